"""Fuzzing the selection operator's parameters with hypothesis: every
input either succeeds or stops with one of our clear ValueErrors, and a
failure leaves the dataset as it was."""

import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fiftyone.operators as foo

from fiftyone_dcd.selection import LABEL_STRATEGIES

from conftest import assert_unchanged, snapshot

PLUGIN = "@dcd/fiftyone-dcd/select_debug_train"
TRIED = {"cases": 0, "ok": 0, "refused": 0, "ours": 0}

VALID = {
    "pool": "pool",
    "embeddings_field": "vec",
    "label_field": "ground_truth",
    "weak_label_field": "weak_label",
    "k": 3,
    "threshold": 0.0,
    "budget": 0,
    "label_strategy": "weak",
    "run_key": "fuzz",
    "overwrite": False,
}

ints = st.one_of(
    st.none(), st.integers(-5, 5000), st.sampled_from([0, 1, 2**40])
)
floats = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -1.0, 1e-12, 5.0]),
)
names = st.one_of(
    st.sampled_from(
        ["vec", "ground_truth", "weak_label", "filepath", "tags", ""]
    ),
    st.text(max_size=12),
)
WILD = {
    "pool": st.one_of(
        st.sampled_from(["pool", "test", "e_sample", "nope", ""]),
        st.text(max_size=8),
    ),
    "embeddings_field": names,
    "label_field": names,
    "weak_label_field": names,
    "k": ints,
    "threshold": floats,
    "budget": ints,
    "label_strategy": st.one_of(
        st.sampled_from(list(LABEL_STRATEGIES)), st.text(max_size=6)
    ),
    "run_key": st.one_of(
        st.sampled_from(["dcd", "a", "b_2", "fuzz"]), st.text(max_size=10)
    ),
    "overwrite": st.booleans(),
}


@st.composite
def params(draw):
    """A valid setting with up to three parameters replaced by anything,
    so that valid runs, single mistakes and combinations all occur."""
    p = dict(VALID)
    for key in draw(
        st.lists(st.sampled_from(sorted(WILD)), max_size=3, unique=True)
    ):
        p[key] = draw(WILD[key])

    return p


def test_fuzz_select_operator(small_dataset):
    ds = small_dataset
    rng = np.random.default_rng(0)
    ds.set_values("vec", [rng.normal(size=8) for _ in range(len(ds))])
    e_sample = ds.match_tags("e_sample")

    @settings(
        max_examples=int(os.environ.get("DCD_FUZZ_EXAMPLES", "60")),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        database=None,
    )
    @given(p=params())
    def run(p):
        p = {k: v for k, v in p.items() if v is not None}
        TRIED["cases"] += 1
        before = snapshot(ds)
        try:
            foo.execute_operator(PLUGIN, ctx={"view": e_sample, "params": p})
        except Exception as e:
            text = str(e)
            # FiftyOne's form validation names the parameter; an operator's
            # own exception comes back with its traceback, and ours are
            # ValueErrors with a sentence naming the fix
            form = text.startswith("Validation error. Path: ")
            assert form or "ValueError" in text, text
            for crash in (
                "TypeError",
                "KeyError",
                "AttributeError",
                "IndexError",
                "ZeroDivisionError",
            ):
                assert crash not in text, text
            TRIED["refused"] += 1
            # the form's "problem" entry carries our dry run's ValueError;
            # other form errors are FiftyOne's checks of types and choices
            TRIED["ours"] += "Path: problem" in text or not form
            assert_unchanged(ds, before)
        else:
            TRIED["ok"] += 1

    run()
    print(
        "fuzz: %(cases)d cases, %(ok)d ran, %(refused)d refused (%(ours)d "
        "by our checks, the rest by FiftyOne's form types and choices)" % TRIED
    )
    assert TRIED["ok"] > 0 and TRIED["ours"] > 0
