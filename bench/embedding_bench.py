"""
Embedding throughput, same model and images, one run: our
``compute_embeddings`` (float32, channels_last, bfloat16), FiftyOne's
``compute_embeddings`` with the same network, and a bare torch loop over
tensors loaded beforehand::

    python bench/embedding_bench.py                   # 2000 images
    python bench/embedding_bench.py --num-images 300  # quick try

The images are Fashion-MNIST PNG files written to a temporary folder and
upscaled to ``--size`` pixels, RGB, as a timm ResNet with random weights
expects (no hub downloads).
"""

import argparse
import os
import platform
import tempfile
import time

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import fiftyone as fo  # noqa: E402
import fiftyone.utils.torch as fout  # noqa: E402

from fiftyone_dcd.data import fashion_mnist as fmnist  # noqa: E402
from fiftyone_dcd.embeddings import compute_embeddings  # noqa: E402
from fiftyone_dcd.loaders import load_image  # noqa: E402
from fiftyone_dcd.models import build_model, penultimate  # noqa: E402
from fiftyone_dcd.selection import knn  # noqa: E402


def make_dataset(folder, num_images, seed):
    images, _ = fmnist.load_split(fmnist.ensure_data_dir(), "test")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(images), num_images, replace=False)
    samples = []
    for j, i in enumerate(idx):
        path = os.path.join(folder, "%05d.png" % j)
        Image.fromarray(images[i]).save(path)
        samples.append(fo.Sample(filepath=path))

    dataset = fo.Dataset()
    dataset.add_samples(samples)

    return dataset


def fiftyone_model(net, spec):
    """The same network as a FiftyOne ``TorchImageModel``, its embeddings
    read from ``global_pool`` (timm's pre-logits for a ResNet), with
    transforms that match our loader's."""
    import torchvision.transforms as T

    size = spec["input_size"]
    transforms = T.Compose(
        [
            T.Lambda(lambda img: img.convert("RGB")),
            T.Resize((size, size), interpolation=T.InterpolationMode.BILINEAR),
            T.ToTensor(),
            T.Normalize(spec["mean"], spec["std"]),
        ]
    )
    config = fout.TorchImageModelConfig(
        {
            "model": net,
            "transforms": transforms,
            "ragged_batches": False,
            "embeddings_layer": "global_pool",
            "device": "cpu",
        }
    )

    return fout.TorchImageModel(config)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()

    return time.perf_counter() - t0, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-images", type=int, default=2000)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    fo.config.show_progress_bars = False
    torch.manual_seed(args.seed)

    net = build_model(args.model, num_classes=10).eval()
    spec = {
        "in_chans": 3,
        "input_size": args.size,
        "mean": (0.5, 0.5, 0.5),
        "std": (0.25, 0.25, 0.25),
    }
    net.dcd_preprocess = spec
    n = args.num_images
    print(
        "machine: %s, %d CPUs, torch %s threads=%d; %s (random weights) "
        "at %dx%d, %d images, batch %d, %d loader workers"
        % (
            platform.machine(),
            os.cpu_count(),
            torch.__version__,
            torch.get_num_threads(),
            args.model,
            args.size,
            args.size,
            n,
            args.batch_size,
            args.num_workers,
        )
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="dcd-embbench-") as folder:
        dataset = make_dataset(folder, n, args.seed)
        try:
            common = dict(
                batch_size=args.batch_size,
                num_workers=args.num_workers,
                device="cpu",
                skip_existing=False,
            )
            # warms up allocators and thread pools on a few images
            compute_embeddings(dataset.limit(16), net, "warm", **common)

            variants = [
                ("ours float32", "ours32", {"channels_last": False}),
                ("ours channels_last", "ours_cl", {"channels_last": True}),
                (
                    "ours bfloat16+cl",
                    "ours_bf16",
                    {"channels_last": True, "precision": "bfloat16"},
                ),
            ]
            for name, field, extra in variants:
                t0 = time.perf_counter()
                compute_embeddings(dataset, net, field, **common, **extra)
                t = time.perf_counter() - t0
                rows.append((name, t, field))
                net = net.to(memory_format=torch.contiguous_format)

            model = fiftyone_model(net, spec)
            t, _ = timed(
                lambda: dataset.compute_embeddings(
                    model,
                    embeddings_field="fo",
                    batch_size=args.batch_size,
                    num_workers=args.num_workers,
                )
            )
            rows.append(("fiftyone", t, "fo"))

            # the bare loop: tensors decoded beforehand, only the model runs
            x = torch.stack(
                [load_image(p, spec) for p in dataset.values("filepath")]
            )
            for name, fmt in (
                ("bare float32", torch.contiguous_format),
                ("bare channels_last", torch.channels_last),
            ):
                net = net.to(memory_format=fmt)

                def loop(net=net, fmt=fmt):
                    out = []
                    with torch.inference_mode():
                        for s in range(0, n, args.batch_size):
                            xb = x[s : s + args.batch_size]
                            xb = xb.contiguous(memory_format=fmt)
                            out.append(penultimate(net, xb))

                    return torch.cat(out).numpy()

                t, bare = timed(loop)
                rows.append((name, t, None))

            net = net.to(memory_format=torch.contiguous_format)
            vectors = {
                f: np.stack(dataset.values(f)).astype(np.float32)
                for _, _, f in rows
                if f
            }
        finally:
            dataset.delete()

    times = {name: t for name, t, _ in rows}
    print()
    for name, t, _ in rows:
        print("%-20s %7.2f s  %8.1f images/s" % (name, t, n / t))

    ref = vectors["ours32"]
    print()
    for field in ("ours_cl", "ours_bf16", "fo"):
        err = np.linalg.norm(vectors[field] - ref, axis=1) / np.linalg.norm(
            ref, axis=1
        )
        k = min(20, n - 1)
        _, a = knn(ref[:100], ref, k)
        _, b = knn(vectors[field][:100], vectors[field], k)
        overlap = np.mean(
            [len(np.intersect1d(u, v)) / k for u, v in zip(a, b)]
        )
        print(
            "%-10s vs ours float32: relative error median %.2e max %.2e; "
            "%d-NN overlap %.3f"
            % (field, np.median(err), err.max(), k, overlap)
        )

    err = np.abs(bare - ref).max()
    print("bare loop vs ours float32: max abs difference %.2e" % err)

    best = min(
        ("ours float32", "ours channels_last", "ours bfloat16+cl"),
        key=times.get,
    )
    best_exact = min(("ours float32", "ours channels_last"), key=times.get)
    bare = min(times["bare float32"], times["bare channels_last"])
    print()
    print("fastest of ours: %s" % best)
    print(
        "ours (float32, %s) / fiftyone throughput  %.2f  (goal >= 1.0)"
        % (best_exact, times["fiftyone"] / times[best_exact])
    )
    print(
        "ours (float32, %s) / bare loop time       %.2f  (goal <= 1.2)"
        % (best_exact, times[best_exact] / bare)
    )
    print(
        "ours (%s) / bare loop time          %.2f" % (best, times[best] / bare)
    )
    spatial_cost(net, spec, ref.shape[1])


def spatial_cost(net, spec, dim):
    """Storage and comparison cost per image of one penultimate vector
    against an LPIPS-style comparison of the feature maps of every stage,
    as in the paper's comparison."""
    x = torch.zeros(
        1, spec["in_chans"], spec["input_size"], spec["input_size"]
    )
    with torch.inference_mode():
        maps = net.forward_intermediates(x, intermediates_only=True)

    spatial = sum(m[0].numel() for m in maps)
    print(
        "storage per image: %d floats (penultimate) vs %d (feature maps of "
        "%d stages): %.2f%%; comparing two images costs the same ratio"
        % (dim, spatial, len(maps), 100.0 * (dim - spatial) / spatial)
    )


if __name__ == "__main__":
    main()
