"""
FiftyOne operators of fiftyone-dcd: thin forms over :mod:`fiftyone_dcd`.

Each operator reads its form, calls one library function, and returns what
it wrote; every check and all the logic live in the library.
"""

import os
import sys

import fiftyone.operators as foo
import fiftyone.operators.types as types

try:
    import fiftyone_dcd as fodcd
except ImportError:
    # the plugin folder is the repository: use the library beside it when
    # it was not pip-installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
    import fiftyone_dcd as fodcd

from fiftyone_dcd.results import accuracy_traces, summary_markdown
from fiftyone_dcd.selection import (
    DEFAULT_DROPPED_WEIGHT,
    DEFAULT_LABEL_STRATEGY,
    DEFAULT_VOTE_RULE,
    LABEL_STRATEGIES,
    VOTE_RULES,
)

ICON = "/plugin_manifest/dcd.svg"


def _config(name, label, description, **kwargs):
    # every DCD operator may run in the App or as a delegated operation
    return foo.OperatorConfig(
        name=name,
        label=label,
        description=description,
        allow_delegated_execution=True,
        allow_immediate_execution=True,
        dynamic=True,
        icon=ICON,
        **kwargs,
    )


class _Operator(foo.Operator):
    def resolve_run_name(self, ctx):
        # names delegated runs in the App's runs list
        key = ctx.params.get("run_key")
        if isinstance(key, str) and key:
            return "%s (run %s)" % (self.config.label, key)

        return self.config.label


def _form(operator, inputs):
    return types.Property(inputs, view=types.View(label=operator.config.label))


def _fields_of(ctx, doc_type=None, vector=False):
    """Names of the dataset's fields of a label type, or vector fields."""
    import fiftyone as fo

    if ctx.dataset is None:
        return []

    if vector:
        return sorted(
            ctx.dataset.get_field_schema(ftype=fo.VectorField).keys()
        )

    return sorted(
        ctx.dataset.get_field_schema(embedded_doc_type=doc_type).keys()
    )


def _field_input(inputs, name, choices, label, default, description, required):
    """A dropdown of ``choices`` where the dataset has some, else a text
    field for a name the run will check."""
    if choices:
        inputs.enum(
            name,
            choices,
            default=default if default in choices else choices[0],
            required=required,
            label=label,
            description=description,
            view=types.DropdownView(),
        )
    else:
        inputs.str(
            name,
            default=default,
            required=required,
            label=label,
            description=description,
        )


def _label_field(
    ctx, inputs, name, label, default, description, required=True
):
    import fiftyone as fo

    _field_input(
        inputs,
        name,
        _fields_of(ctx, fo.Classification),
        label,
        default,
        description,
        required,
    )


def _model_inputs(inputs, prefix=""):
    inputs.str(
        prefix + "model",
        default="small_cnn",
        required=True,
        label="Model",
        description="'small_cnn', a timm model name (e.g. resnet18, "
        "vit_small_patch16_224.dino) or torchvision:<name>",
    )
    inputs.str(
        prefix + "checkpoint",
        required=False,
        label="Checkpoint",
        description="Path of a state dict to load (read with "
        "weights_only=True)",
    )


def _view_choices(ctx):
    """The dataset's saved views and sample tags, which name views."""
    if ctx.dataset is None:
        return []

    return sorted(ctx.dataset.list_saved_views()) + sorted(
        t for t in ctx.dataset.distinct("tags")
    )


def _view_input(ctx, inputs, name, label, default, description, required=True):
    choices = _view_choices(ctx)
    view = types.AutocompleteView()
    for choice in choices:
        view.add_choice(choice, label=choice)

    inputs.str(
        name,
        default=default if default in choices or not choices else None,
        required=required,
        label=label,
        description="A sample tag or saved view name. " + description,
        view=view,
    )


def _vector_input(ctx, inputs, name, label, default, description):
    _field_input(
        inputs,
        name,
        _fields_of(ctx, vector=True),
        label,
        default,
        description,
        True,
    )


def _check_form(inputs, check, params, required):
    """Runs the library's dry run ``check()`` once the ``required``
    parameters are filled in, and turns its ``ValueError`` into an invalid
    form entry that names the problem, so that a run which cannot succeed
    cannot be started."""
    if any(params.get(name) in (None, "") for name in required):
        return

    try:
        check()
    except ValueError as e:
        prop = inputs.view(
            "problem",
            types.Error(label="This run cannot start", description=str(e)),
        )
        prop.invalid = True
        prop.error_message = str(e)


def _run_inputs(inputs):
    inputs.str(
        "run_key",
        default="dcd",
        required=False,
        label="Run key",
        description="Namespaces the fields (dcd_...), tags "
        "(dcd:<run_key>:...) and run this writes",
    )
    inputs.bool(
        "overwrite",
        default=False,
        label="Overwrite",
        description="Replace what an earlier run with this key " "wrote",
    )


def _progress(ctx):
    def progress(fraction, label):
        ctx.set_progress(progress=fraction, label=label)

    return progress


def _count_progress(ctx):
    def progress(done, total):
        ctx.set_progress(
            progress=done / max(total, 1), label="%d of %d" % (done, total)
        )

    return progress


def _none_if_zero(value):
    return value if value else None


def _selection_inputs(ctx, inputs):
    inputs.int(
        "k",
        default=0,
        label="k",
        description="Neighbours per E_sample image; 0 chooses a distance "
        "threshold from E_sample instead",
    )
    inputs.float(
        "threshold",
        default=0.0,
        label="Distance threshold",
        description="The largest l2 distance selected; 0 for none",
    )
    inputs.int(
        "budget",
        default=0,
        label="Budget",
        description="The most images selected; 0 for none",
    )
    inputs.enum(
        "label_strategy",
        list(LABEL_STRATEGIES),
        default=DEFAULT_LABEL_STRATEGY,
        label="Label strategy",
        description="weak: the pool's label; query: the label of the "
        "E_sample image that found it; agree: weak labels, only where the "
        "two agree; vote: weak labels where they equal the vote of the "
        "image's nearest pool images (see the vote rule), the others at a "
        "lower weight; auto: "
        "vote, or agree where its signal predicts E_sample's own labels "
        "clearly better",
        view=types.DropdownView(),
    )
    if _weighs_doubted(ctx.params):
        inputs.enum(
            "vote_rule",
            list(VOTE_RULES),
            default=DEFAULT_VOTE_RULE,
            label="Vote rule",
            description="majority: the most frequent weak label of the "
            "image's nearest pool images; noise: the class whose pattern "
            "of neighbours' weak labels, estimated on E_sample, best "
            "explains them (for noise that mistakes a class for a few "
            "others); auto: noise where it predicts E_sample's own labels "
            "clearly better, else majority",
            view=types.DropdownView(),
        )
        inputs.float(
            "dropped_weight",
            default=DEFAULT_DROPPED_WEIGHT,
            label="Weight of doubted images",
            description="with vote labels: also train, at this weight (0 "
            "to 0.5) on both labels, on the selected images whose weak "
            "label the vote contradicts; 0 drops them. Left at %g, the "
            "noise vote drops them" % DEFAULT_DROPPED_WEIGHT,
        )


def _weighs_doubted(p):
    # the weight only means something where the labels may be the vote's
    return p.get("label_strategy", DEFAULT_LABEL_STRATEGY) in ("vote", "auto")


def _dropped_weight(p):
    # the form always holds a number; its default is the library's
    # default (None), so that a run whose "auto" picks agree does not say
    # that a weight nobody chose went unused
    w = p.get("dropped_weight")
    if not _weighs_doubted(p) or w is None or w == DEFAULT_DROPPED_WEIGHT:
        return None

    return w


def _selection_params(p):
    return dict(
        k=_none_if_zero(p.get("k")),
        threshold=_none_if_zero(p.get("threshold")),
        budget=_none_if_zero(p.get("budget")),
        label_strategy=p.get("label_strategy", DEFAULT_LABEL_STRATEGY),
        dropped_weight=_dropped_weight(p),
        vote_rule=(
            p.get("vote_rule") or DEFAULT_VOTE_RULE
            if _weighs_doubted(p)
            else DEFAULT_VOTE_RULE
        ),
    )


class TrainDCDModel(_Operator):
    @property
    def config(self):
        return _config(
            "train_dcd_model",
            "DCD: train a model under debug",
            "Trains a classifier on the target samples with an "
            "mmengine Runner and saves its weights",
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        ctx.target_view()
        _label_field(
            ctx,
            inputs,
            "label_field",
            "Label field",
            "ground_truth",
            "The training labels",
        )
        inputs.str("model", default="small_cnn", required=True, label="Model")
        inputs.int("epochs", default=3, label="Epochs")
        inputs.float("lr", default=0.05, label="Learning rate")
        inputs.str(
            "work_dir",
            required=False,
            label="Work folder",
            description="Where checkpoints go (default: the cache)",
        )

        return _form(self, inputs)

    def execute(self, ctx):
        p = ctx.params
        _, path = fodcd.train_model(
            ctx.target_view(),
            label_field=p["label_field"],
            model=p.get("model") or "small_cnn",
            work_dir=p.get("work_dir") or None,
            epochs=p.get("epochs", 3),
            lr=p.get("lr", 0.05),
            progress=_count_progress(ctx),
        )

        return {"checkpoint": path}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("checkpoint", label="Checkpoint")

        return types.Property(outputs)


class ComputeDCDEmbeddings(_Operator):
    @property
    def config(self):
        return _config(
            "compute_dcd_embeddings",
            "DCD: compute penultimate-layer embeddings",
            "Stores a model's penultimate-layer activations in "
            "a vector field",
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        ctx.target_view()
        _model_inputs(inputs)
        inputs.str(
            "embeddings_field",
            default="dcd_embeddings",
            required=True,
            label="Embeddings field",
        )
        inputs.int("batch_size", default=256, label="Batch size")
        inputs.int("num_workers", default=0, label="Loader workers")
        inputs.bool(
            "overwrite",
            default=False,
            label="Recompute all",
            description="Otherwise only samples without a vector "
            "are computed",
        )

        return _form(self, inputs)

    def execute(self, ctx):
        p = ctx.params
        n = fodcd.embed(
            ctx.target_view(),
            p["model"],
            p["embeddings_field"],
            checkpoint=p.get("checkpoint") or None,
            batch_size=p.get("batch_size", 256),
            num_workers=p.get("num_workers", 0),
            overwrite=p.get("overwrite", False),
            progress=_count_progress(ctx),
        )

        return {"num_computed": n}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.int("num_computed", label="Samples embedded")

        return types.Property(outputs)


class TagDCDErrors(_Operator):
    @property
    def config(self):
        return _config(
            "tag_dcd_errors",
            "DCD: tag errors and split E_sample",
            "Predicts the target samples, tags the "
            "misclassified ones, and optionally splits them into E_sample "
            "and debug-heldout",
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        ctx.target_view()
        _model_inputs(inputs)
        _label_field(
            ctx,
            inputs,
            "label_field",
            "Label field",
            "ground_truth",
            "The true labels",
        )
        inputs.int(
            "num_e_sample",
            default=0,
            label="E_sample size",
            description="If > 0, tag this many of the target samples "
            "E_sample and the rest debug-heldout",
        )
        inputs.int("seed", default=0, label="Seed")
        _run_inputs(inputs)

        return _form(self, inputs)

    def execute(self, ctx):
        p = ctx.params
        return fodcd.tag_errors(
            ctx.target_view(),
            p["model"],
            label_field=p["label_field"],
            checkpoint=p.get("checkpoint") or None,
            run_key=p.get("run_key", "dcd"),
            num_e_sample=p.get("num_e_sample") or None,
            seed=p.get("seed", 0),
            overwrite=p.get("overwrite", False),
            progress=_count_progress(ctx),
        )

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.int("num_errors", label="Misclassified samples")
        outputs.int("num_e_sample", label="E_sample size")

        return types.Property(outputs)


class SelectDebugTrain(_Operator):
    @property
    def config(self):
        return _config(
            "select_debug_train",
            "DCD: select debug-train from the pool",
            "For each E_sample image (the target samples), "
            "selects its k nearest pool images by l2 distance",
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        ctx.target_view()
        _view_input(
            ctx, inputs, "pool", "Pool", "pool", "The weakly labelled pool F"
        )
        _vector_input(
            ctx,
            inputs,
            "embeddings_field",
            "Embeddings field",
            "dcd_embeddings",
            "Penultimate-layer embeddings of the pool and E_sample",
        )
        _label_field(
            ctx,
            inputs,
            "label_field",
            "E_sample label field",
            "ground_truth",
            "The labels of the target samples",
        )
        _label_field(
            ctx,
            inputs,
            "weak_label_field",
            "Pool weak labels",
            "weak_label",
            "The pool's weak labels",
        )
        _selection_inputs(ctx, inputs)
        _run_inputs(inputs)
        _check_form(
            inputs,
            lambda: self._select(ctx, dry_run=True),
            ctx.params,
            ("pool", "embeddings_field", "label_field", "weak_label_field"),
        )

        return _form(self, inputs)

    def _select(self, ctx, dry_run=False):
        p = ctx.params
        return fodcd.select_debug_train(
            p["pool"],
            ctx.target_view(),
            p["embeddings_field"],
            label_field=p["label_field"],
            weak_label_field=p["weak_label_field"],
            run_key=p.get("run_key", "dcd"),
            overwrite=p.get("overwrite", False),
            dry_run=dry_run,
            progress=None if dry_run else _count_progress(ctx),
            **_selection_params(p),
        )

    def execute(self, ctx):
        p = ctx.params
        view = self._select(ctx)
        names = fodcd.RunNames(p.get("run_key", "dcd"))

        return {
            "num_selected": len(view),
            "saved_view": names.debug_train_view,
        }

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.int("num_selected", label="Images selected")
        outputs.str("saved_view", label="Saved view")

        return types.Property(outputs)


def _finetune_inputs(ctx, inputs):
    _view_input(
        ctx,
        inputs,
        "train",
        "Training set",
        "train",
        "The original training data, replayed",
    )
    _view_input(
        ctx, inputs, "test", "Test set", "test", "The original test set"
    )
    _view_input(
        ctx,
        inputs,
        "heldout",
        "Debug-heldout",
        "dcd:dcd:heldout",
        "Held-out samples of the error distribution",
    )
    _view_input(
        ctx, inputs, "pool", "Pool", "pool", "The weakly labelled pool"
    )
    inputs.int("epochs", default=2, label="Epochs")
    inputs.float("lr", default=0.01, label="Learning rate")
    inputs.float(
        "replay",
        default=1.0,
        label="Replay",
        description="Share of the training data replayed",
    )
    inputs.list(
        "baselines",
        types.String(),
        default=list(fodcd.api.BASELINES),
        label="Baselines",
    )
    inputs.str("work_dir", required=False, label="Work folder")


class FinetuneDCD(_Operator):
    @property
    def config(self):
        return _config(
            "finetune_dcd",
            "DCD: fine-tune and compare with baselines",
            "Fine-tunes on train + E_sample + debug-train, "
            "evaluates against baselines, and stores the report as a run",
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        ctx.target_view()
        _model_inputs(inputs)
        _view_input(
            ctx,
            inputs,
            "e_sample",
            "E_sample",
            "dcd:dcd:e_sample",
            "The labelled samples of the error distribution",
        )
        _label_field(
            ctx,
            inputs,
            "label_field",
            "Label field",
            "ground_truth",
            "Labels of train, test and E",
        )
        _label_field(
            ctx,
            inputs,
            "weak_label_field",
            "Pool weak labels",
            "weak_label",
            "The pool's weak labels",
        )
        _finetune_inputs(ctx, inputs)
        _run_inputs(inputs)

        return _form(self, inputs)

    def execute(self, ctx):
        p = ctx.params
        result = fodcd.finetune_dcd(
            ctx.target_view(),
            p["model"],
            train=p["train"],
            test=p["test"],
            heldout=p["heldout"],
            e_sample=p["e_sample"],
            pool=p.get("pool") or None,
            label_field=p["label_field"],
            weak_label_field=p["weak_label_field"],
            checkpoint=p.get("checkpoint") or None,
            baselines=p.get("baselines", fodcd.api.BASELINES),
            epochs=p.get("epochs", 2),
            lr=p.get("lr", 0.01),
            replay=p.get("replay", 1.0),
            run_key=p.get("run_key", "dcd"),
            work_dir=p.get("work_dir") or None,
            overwrite=p.get("overwrite", False),
            progress=_progress(ctx),
        )

        return {"table": result["table"], "run_key": p.get("run_key", "dcd")}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("table", label="Report")
        outputs.str("run_key", label="Run key")

        return types.Property(outputs)


class ApplyDCD(_Operator):
    @property
    def config(self):
        return _config(
            "apply_dcd",
            "DCD: run the whole pipeline",
            "Embeds, selects debug-train, fine-tunes, compares "
            "with baselines and stores the report as a run",
            default_choice_to_delegated=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        ctx.target_view()
        _model_inputs(inputs)
        _view_input(
            ctx,
            inputs,
            "e_sample",
            "E_sample",
            "e_sample",
            "The labelled samples of the error distribution; leave empty "
            "to use the target view (e.g. the samples selected in the grid)",
            required=False,
        )
        _label_field(
            ctx,
            inputs,
            "label_field",
            "Label field",
            "ground_truth",
            "Labels of train, test and E",
        )
        _label_field(
            ctx,
            inputs,
            "weak_label_field",
            "Pool weak labels",
            "weak_label",
            "The pool's weak labels",
        )
        _selection_inputs(ctx, inputs)
        inputs.enum(
            "rounds",
            [1, 2],
            default=2,
            label="Rounds",
            description="2: select again in the features of a model "
            "fine-tuned on a first selection; 1: select once",
            view=types.RadioGroup(),
        )
        _finetune_inputs(ctx, inputs)
        _run_inputs(inputs)
        _check_form(
            inputs,
            lambda: self._apply(ctx, dry_run=True),
            ctx.params,
            (
                "model",
                "train",
                "test",
                "pool",
                "heldout",
                "label_field",
                "weak_label_field",
            ),
        )

        return _form(self, inputs)

    def execute(self, ctx):
        p = ctx.params
        result = self._apply(ctx, progress=_progress(ctx))

        return {
            "table": result["table"],
            "run_key": p.get("run_key", "dcd"),
            "num_selected": result["num_selected"],
        }

    def _apply(self, ctx, progress=None, dry_run=False):
        p = ctx.params
        return ctx.target_view().apply_dcd(
            p["model"],
            train=p["train"],
            test=p["test"],
            pool=p["pool"],
            e_sample=p.get("e_sample") or ctx.target_view(),
            heldout=p["heldout"],
            label_field=p["label_field"],
            weak_label_field=p["weak_label_field"],
            checkpoint=p.get("checkpoint") or None,
            baselines=p.get("baselines", fodcd.api.BASELINES),
            epochs=p.get("epochs", 2),
            lr=p.get("lr", 0.01),
            replay=p.get("replay", 1.0),
            run_key=p.get("run_key", "dcd"),
            work_dir=p.get("work_dir") or None,
            overwrite=p.get("overwrite", False),
            progress=progress,
            rounds=p.get("rounds", 2),
            dry_run=dry_run,
            **_selection_params(p),
        )

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("table", label="Report")
        outputs.str("run_key", label="Run key")
        outputs.int("num_selected", label="Images selected")

        return types.Property(outputs)


class DCDResultsPanel(foo.Panel):
    """Shows a DCD run of the dataset: accuracies against the baselines,
    per-class changes, selection purity, and buttons that load the run's
    views into the grid."""

    @property
    def config(self):
        return foo.PanelConfig(
            name="dcd_results",
            label="DCD results",
            icon=ICON,
            help_markdown="The latest Data-Centric Debugging run of this "
            "dataset; pick another run in the dropdown",
        )

    def on_load(self, ctx):
        self._refresh(ctx, ctx.panel.state.run_key)

    def on_change_dataset(self, ctx):
        self._refresh(ctx, None)

    def on_pick_run(self, ctx):
        self._refresh(ctx, ctx.params.get("value"))

    def _refresh(self, ctx, run_key):
        runs = fodcd.list_dcd_runs(ctx.dataset) if ctx.dataset else []
        if run_key not in runs:
            run_key = runs[-1] if runs else None

        ctx.panel.state.runs = runs
        ctx.panel.state.run_key = run_key
        summary = (
            fodcd.summarize_run(ctx.dataset, run_key) if run_key else None
        )
        ctx.panel.state.summary = (
            summary_markdown(summary) if summary else None
        )
        ctx.panel.data.accuracy = accuracy_traces(summary) if summary else []

    def _load_view(self, ctx, which):
        view = fodcd.run_view(ctx.dataset, ctx.panel.state.run_key, which)
        ctx.ops.set_view(view=view)

    def show_e_sample(self, ctx):
        self._load_view(ctx, "e_sample")

    def show_heldout(self, ctx):
        self._load_view(ctx, "heldout")

    def show_debug_train(self, ctx):
        self._load_view(ctx, "debug_train")

    def render(self, ctx):
        panel = types.Object()
        runs = ctx.panel.state.runs or []
        if not runs:
            panel.md(
                "No DCD run on this dataset yet. Run **DCD: run the whole "
                "pipeline** from the operator browser, or "
                "`dataset.apply_dcd(...)` in Python.",
                name="empty",
            )
            return types.Property(panel, view=types.GridView(padding=2))

        panel.enum(
            "run_key",
            runs,
            default=ctx.panel.state.run_key,
            label="Run",
            view=types.DropdownView(),
            on_change=self.on_pick_run,
        )
        panel.plot(
            "accuracy",
            # the App's own layout hides the legend and leaves no room
            # for a title (t: 8): a legend above the bars names the
            # colours, the y axis says what they measure
            layout={
                "barmode": "group",
                "yaxis": {
                    "range": [0, 100],
                    "title": {"text": "accuracy (%)"},
                },
                "showlegend": True,
                "legend": {
                    "orientation": "h",
                    "x": 0,
                    "y": 1.02,
                    "yanchor": "bottom",
                },
                "margin": {"t": 40},
            },
            config={"displayModeBar": False},
        )
        buttons = panel.h_stack("views", gap=1)
        buttons.btn("e_sample", label="E_sample", on_click=self.show_e_sample)
        buttons.btn(
            "heldout", label="Debug-heldout", on_click=self.show_heldout
        )
        buttons.btn(
            "debug_train",
            label="Debug-train, nearest first",
            on_click=self.show_debug_train,
        )
        panel.md(ctx.panel.state.summary or "", name="summary")

        return types.Property(panel, view=types.GridView(padding=2))


OPERATORS = (
    TrainDCDModel,
    ComputeDCDEmbeddings,
    TagDCDErrors,
    SelectDebugTrain,
    FinetuneDCD,
    ApplyDCD,
)

PANELS = (DCDResultsPanel,)


def register(p):
    for cls in OPERATORS + PANELS:
        p.register(cls)
