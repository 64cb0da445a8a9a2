"""
The ``fiftyone-dcd`` command: ``doctor`` checks the database, ``demo`` runs
the Fashion-MNIST demo.
"""

import argparse
import json
import logging
import os
import sys

from fiftyone_dcd.data.noise import NOISE_TYPES
from fiftyone_dcd.selection import (
    DEFAULT_DROPPED_WEIGHT,
    DEFAULT_LABEL_STRATEGY,
    DEFAULT_VOTE_RULE,
    LABEL_STRATEGIES,
    VOTE_RULES,
)


def _doctor(args):
    from fiftyone_dcd import database

    problem = database.diagnose()
    if problem and args.fix and not os.environ.get("FIFTYONE_DATABASE_URI"):
        print(
            "mongod cannot run; installing %s" % database.OPENSSL3_DB_PACKAGE
        )
        remaining = database.fix_mongod()
        problem = database.diagnose() if remaining is None else remaining

    if problem:
        print(
            "FiftyOne's database will not start: %s" % problem, file=sys.stderr
        )
        return 1

    where = os.environ.get("FIFTYONE_DATABASE_URI") or database.find_mongod()
    print("FiftyOne's database is ready (%s)" % where)

    return 0


def _demo(args):
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s"
    )
    for name in ("eta", "fiftyone", "matplotlib"):
        logging.getLogger(name).setLevel(logging.WARNING)

    import fiftyone as fo

    from fiftyone_dcd.database import DatabaseError
    from fiftyone_dcd.demo import format_result, run_demo

    fo.config.show_progress_bars = not args.quiet
    scenario = dict(
        pool_size=args.pool_size,
        noise=args.noise,
        noise_rate=args.noise_rate,
        deployment_shift=args.shift,
        num_e_sample=args.num_e_sample,
    )
    try:
        result = run_demo(
            name=args.name,
            data_dir=args.data_dir,
            cache_dir=args.cache_dir,
            seed=args.seed,
            k=args.k,
            label_strategy=args.label_strategy,
            dropped_weight=args.dropped_weight,
            vote_rule=args.vote_rule,
            rounds=args.rounds,
            epochs=args.epochs,
            num_workers=args.num_workers,
            scenario_kwargs=scenario,
        )
    except (DatabaseError, FileNotFoundError, ValueError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2

    print()
    print(format_result(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {k: v for k, v in result.items() if k != "config"},
                f,
                indent=2,
                default=str,
            )

    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="fiftyone-dcd",
        description="Data-Centric Debugging of image classifiers",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("doctor", help="check that FiftyOne's database starts")
    p.add_argument(
        "--fix",
        action="store_true",
        help="install a mongod that runs here if the current " "one cannot",
    )
    p.set_defaults(func=_doctor)

    p = sub.add_parser("demo", help="run DCD on Fashion-MNIST")
    p.add_argument(
        "--name",
        default="dcd-fashion-mnist",
        help="the dataset name (default: %(default)s)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="a folder with the Fashion-MNIST IDX files",
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        help="where downloads and images are kept "
        "(default: ~/.cache/fiftyone-dcd)",
    )
    p.add_argument("--seed", type=int, default=51)
    p.add_argument("--pool-size", type=int, default=30000)
    p.add_argument("--noise", default="symmetric", choices=NOISE_TYPES)
    p.add_argument("--noise-rate", type=float, default=0.4)
    p.add_argument(
        "--shift",
        default="invert",
        help="the deployment shift (default: %(default)s)",
    )
    p.add_argument("--num-e-sample", type=int, default=100)
    p.add_argument(
        "--k",
        type=int,
        default=None,
        help="neighbours per E_sample image (default: a distance threshold "
        "chosen from E_sample)",
    )
    p.add_argument(
        "--label-strategy",
        default=DEFAULT_LABEL_STRATEGY,
        choices=LABEL_STRATEGIES,
        help="how selected pool images are labelled (default: %(default)s)",
    )
    p.add_argument(
        "--dropped-weight",
        type=float,
        default=None,
        help="with vote labels, the weight (0-0.5) of each of the two "
        "labels of an image the vote doubts; 0 drops them (default: %g "
        "under the majority vote, 0 under the noise vote)"
        % DEFAULT_DROPPED_WEIGHT,
    )
    p.add_argument(
        "--vote-rule",
        choices=VOTE_RULES,
        default=DEFAULT_VOTE_RULE,
        help="how the vote label strategy's neighbours vote; auto: the "
        "noise vote where it predicts E_sample's labels clearly better "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=2,
        choices=[1, 2],
        help="2 selects again in the features of a model fine-tuned on a "
        "first selection (default: %(default)s)",
    )
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument(
        "--json", default=None, help="also write the result to this JSON file"
    )
    p.add_argument("--quiet", action="store_true", help="hide progress bars")
    p.set_defaults(func=_demo)

    args = parser.parse_args(argv)

    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
