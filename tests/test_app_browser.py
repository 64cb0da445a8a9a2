"""The plugin in the FiftyOne App, in a real browser: the App server runs
in a subprocess on this test's database, Debian's Chromium is driven by
Playwright, and what the App does is checked in the database.

-   the selection operator is filled in and executed from the App's
    operator browser, and writes what the library writes;
-   every operator of ``fiftyone.yml`` is listed in the operator browser,
    and every panel in the App's new-panel menu;
-   the DCD results panel shows the accuracies of the latest run.

Skipped only when no Chromium executable is found (``/usr/bin/chromium``,
``$DCD_CHROMIUM``, or Playwright's own download); ``scripts/setup.sh``
installs Debian's ``chromium``.

Screenshots of the filled form and of the panel go to ``$DCD_ARTIFACTS``
(default: the test's tmp_path), and to ``docs/`` with ``DCD_UPDATE_DOCS=1``.
"""

import os
import re
import shutil
import sys
import time
import uuid

import numpy as np
import pytest
import yaml

import fiftyone as fo
import fiftyone.core.utils as fou

import fiftyone_dcd
from fiftyone_dcd.naming import RunNames

import app_browser as ab
from conftest import ROOT, build_small_dataset

TIMEOUT_MS = 120_000  # the loaded 2-core CI machine is slow
SELECT_LABEL = "DCD: select debug-train from the pool"
PANEL_NAME = "dcd_results"
ERROR_TEXT = "Error occurred during operator execution"
INVALID_TEXT = "This run cannot start"


# --------------------------------------------------------------------------
# fixtures: browser, App server, artifacts
# --------------------------------------------------------------------------


def _playwright_chromium():
    """The Chromium Playwright downloaded itself, if it did."""
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            path = p.chromium.executable_path
    except Exception:
        return None

    return path if path and os.access(path, os.X_OK) else None


@pytest.fixture(scope="module")
def chromium():
    path = ab.find_chromium() or _playwright_chromium()
    if path is None:
        pytest.skip(
            "No Chromium executable found (looked for /usr/bin/chromium, "
            "$DCD_CHROMIUM, chromium on PATH and Playwright's own "
            "download); scripts/setup.sh installs Debian's chromium"
        )

    return path


@pytest.fixture(scope="module")
def browser(chromium):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "Chromium is at %s but playwright is not installed; "
            "pip install -e '.[test]'" % chromium
        )

    pw = sync_playwright().start()
    try:
        b = ab.launch_browser(pw, chromium)
    except Exception:
        pw.stop()
        raise

    yield b
    b.close()
    pw.stop()


@pytest.fixture(scope="module")
def app_server(chromium, tmp_path_factory, request):
    server = ab.AppServer(ROOT, str(tmp_path_factory.mktemp("app_server")))
    request.addfinalizer(server.stop)
    server.start()

    return server


@pytest.fixture
def artifacts(tmp_path):
    folder = os.environ.get("DCD_ARTIFACTS") or str(tmp_path)
    os.makedirs(folder, exist_ok=True)

    return folder


def _publish(path, docs_name):
    """Copies an artifact into docs/ when DCD_UPDATE_DOCS=1."""
    if os.environ.get("DCD_UPDATE_DOCS") == "1":
        shutil.copyfile(path, os.path.join(ROOT, "docs", docs_name))


@pytest.fixture
def page(browser, app_server, artifacts, request):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(viewport={"width": 1400, "height": 1700})
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    # the App's "Accelerate your workflow" promotion covers the grid's
    # corner: dismissed whenever it shows up before an action
    pg.add_locator_handler(
        pg.get_by_text("Dismiss", exact=True), lambda loc: loc.click()
    )
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    # the last state of the page, for a failed test
    try:
        pg.screenshot(
            path=os.path.join(artifacts, request.node.name + "_last.png")
        )
    except Exception:
        pass

    if errors:
        print("page errors:", *errors[:5], sep="\n  ")

    context.close()


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------


def _persistent(dataset, prefix):
    # lowercase letters, digits and dashes: the name is its own URL slug
    dataset.name = "%s-%s" % (prefix, uuid.uuid4().hex[:8])
    dataset.persistent = True

    return dataset


@pytest.fixture(scope="module")
def select_dataset(fmnist_arrays, small_root):
    """20 E_sample images (the App's current view: the saved view
    ``e-sample``) and a pool of 300 with weak labels, embedded by a
    SmallCNN."""
    images, labels = fmnist_arrays
    ds = build_small_dataset(
        os.path.join(small_root, "app_select"),
        images,
        labels,
        seed=5,
        n_train=20,
        n_test=20,
        n_pool=300,
        n_e=40,
    )
    _persistent(ds, "dcd-app-select")
    fiftyone_dcd.embed(
        ds.match_tags(["pool", "e_sample"]), "small_cnn", "dcd_embeddings"
    )
    ds.save_view("e-sample", ds.match_tags("e_sample"))
    yield ds
    if fo.dataset_exists(ds.name):
        ds.delete()


@pytest.fixture
def panel_dataset(fmnist_arrays, small_root, tmp_path):
    """A dataset with two DCD runs: ``first`` (no baselines), then the
    latest, ``latest`` (with the random baseline), of a model trained for
    40 steps: enough that it predicts more than one class and that
    accuracies differ between methods (~50% on test)."""
    images, labels = fmnist_arrays
    ds = build_small_dataset(
        os.path.join(small_root, "app_panel"),
        images,
        labels,
        seed=6,
        n_train=300,
        n_test=60,
        n_pool=200,
        n_e=60,
    )
    _persistent(ds, "dcd-app-panel")
    _, checkpoint = fiftyone_dcd.train_model(
        ds.match_tags("train"),
        "ground_truth",
        model="small_cnn",
        work_dir=str(tmp_path / "model"),
        epochs=4,
        batch_size=32,
    )
    settings = dict(
        checkpoint=checkpoint,
        train="train",
        test="test",
        pool="pool",
        e_sample="e_sample",
        heldout="heldout",
        k=3,
        rounds=1,
        label_strategy="weak",
        batch_size=32,
    )
    ds.apply_dcd(
        "small_cnn",
        epochs=1,
        baselines=[],
        run_key="first",
        work_dir=str(tmp_path / "first"),
        **settings,
    )
    ds.apply_dcd(
        "small_cnn",
        epochs=2,
        baselines=["random"],
        run_key="latest",
        work_dir=str(tmp_path / "latest"),
        **settings,
    )
    yield ds
    if fo.dataset_exists(ds.name):
        ds.delete()


def _manifest():
    with open(os.path.join(ROOT, "fiftyone.yml")) as f:
        return yaml.safe_load(f)


def _plugin_module():
    sys.path.insert(0, ROOT)
    import operators

    return operators


def _labels(classes):
    return {cls().config.name: cls().config.label for cls in classes}


def knn_union(queries, pool, pool_ids, k):
    """Brute force: the ids of the union of each query's k nearest pool
    images by l2 distance, with the smallest distance that found each."""
    d = np.linalg.norm(
        queries[:, None, :].astype(np.float64) - pool[None, :, :], axis=2
    )
    best = {}
    for qi in range(len(queries)):
        for pi in np.argsort(d[qi], kind="stable")[:k]:
            best[pool_ids[pi]] = min(best.get(pool_ids[pi], np.inf), d[qi, pi])

    return best


# --------------------------------------------------------------------------
# the App
# --------------------------------------------------------------------------


def open_dataset(page, server, dataset, view=None):
    page.goto(
        ab.dataset_url(server, dataset.name, view=view),
        wait_until="domcontentloaded",
    )
    # the grid's panel bar is there once the dataset has loaded
    page.locator("[data-cy=new-panel-btn]").first.wait_for()
    page.locator("[data-cy=looker]").first.wait_for()


def open_operator_browser(page):
    search = page.get_by_placeholder("Search operations by name")
    page.locator("body").press("`")
    search.wait_for()

    return search


def open_operator(page, label):
    search = open_operator_browser(page)
    search.fill(label)
    page.get_by_text(label, exact=True).click()
    # the form: a dialog titled by the operator's label
    form = page.locator("form")
    form.wait_for()

    return form


def _form_problem(page):
    """The error or invalid-form message the operator's dialog shows, or
    None."""
    for text in (ERROR_TEXT, INVALID_TEXT):
        loc = page.get_by_text(text)
        if loc.count() and loc.first.is_visible():
            dialog = page.locator(".MuiDialog-root").first
            try:
                loc.first.click(timeout=2000)  # expands the traceback
            except Exception:
                pass

            return dialog.inner_text() if dialog.count() else text

    return None


def field(page, label):
    """The form entry whose label is ``label``."""
    return page.locator(
        "xpath=//form//p[normalize-space()=%s]/ancestor::div[contains("
        "concat(' ', @class, ' '), ' MuiGrid-item ')][1]" % _xpath_str(label)
    )


def _xpath_str(s):
    return "'%s'" % s if "'" not in s else '"%s"' % s


def set_field(page, label, value):
    """Fills the entry ``label`` of the open form with ``value``: a
    dropdown (MUI Select), an autocomplete, a checkbox or a text/number
    input, whichever the App rendered."""
    from playwright.sync_api import expect

    entry = field(page, label)
    entry.wait_for()
    select = entry.locator("div[role=combobox]")
    if select.count():
        select.click()
        page.get_by_role("option", name=str(value), exact=True).click()
        expect(select).to_have_text(str(value))
        return

    checkbox = entry.locator("input[type=checkbox]")
    if checkbox.count():
        checkbox.set_checked(bool(value))
        return

    inp = entry.locator("input")
    inp.fill(str(value))
    if inp.get_attribute("role") == "combobox":
        # an autocomplete: take the typed value
        inp.press("Enter")

    expect(inp).to_have_value(str(value))


def field_value(page, label):
    entry = field(page, label)
    select = entry.locator("div[role=combobox]")
    if select.count():
        return select.inner_text().strip()

    return entry.locator("input").first.input_value()


def execute_button(page):
    return (
        page.get_by_role("group", name="split button").locator("button").first
    )


def wait_until_executable(page, timeout_s=TIMEOUT_MS / 1000):
    """Waits until the form is validated and its Execute button enabled;
    fails with the form's message if it shows an error instead."""
    button = execute_button(page)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        problem = _form_problem(page)
        if problem:
            pytest.fail("The operator's form shows a problem:\n" + problem)

        if button.count() and button.is_enabled():
            # enabled, and still so a moment later: not between two
            # validations of the form
            page.wait_for_timeout(500)
            if button.is_enabled() and not _form_problem(page):
                return

        page.wait_for_timeout(250)

    pytest.fail("The operator's Execute button stayed disabled")


def choose_immediate_execution(page):
    """Picks 'Execute' (run now, not delegated) in the split button's
    menu, when the operator offers a choice."""
    group = page.get_by_role("group", name="split button")
    menu_button = group.locator("button[aria-haspopup=menu]")
    if not menu_button.count():
        return

    menu_button.click()
    item = page.get_by_role("menuitem").filter(
        has_text=re.compile(r"^\s*Execute")
    )
    item.first.click()
    page.get_by_role("menuitem").first.wait_for(state="hidden")


def wait_for_output(page, text, timeout_s=TIMEOUT_MS / 1000):
    """Waits for the executed operator's output to show ``text``."""
    deadline = time.monotonic() + timeout_s
    # the App writes an output's label with a colon: "Images selected:"
    out = page.get_by_text(re.compile(r"^\s*%s:?\s*$" % re.escape(text)))
    while time.monotonic() < deadline:
        problem = _form_problem(page)
        if problem:
            pytest.fail("The operator failed in the App:\n" + problem)

        if out.count() and out.first.is_visible():
            return page.locator(".MuiDialog-root").first.inner_text()

        page.wait_for_timeout(250)

    pytest.fail("The operator's output did not show '%s'" % text)


# --------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------


def test_select_debug_train_from_the_operator_browser(
    page, app_server, select_dataset, artifacts
):
    from playwright.sync_api import expect

    ds = select_dataset
    run_key, k = "app", 5
    names = RunNames(run_key)
    t0 = time.monotonic()

    # the App's current view is E_sample: the operator's target
    open_dataset(page, app_server, ds, view=fou.to_slug("e-sample"))
    open_operator(page, SELECT_LABEL)
    expect(page.get_by_text(SELECT_LABEL, exact=True).first).to_be_visible()
    target = page.get_by_text("Current view", exact=True)
    if target.count():
        target.click()

    wanted = [
        ("Pool", "pool"),
        ("Embeddings field", "dcd_embeddings"),
        ("E_sample label field", "ground_truth"),
        ("Pool weak labels", "weak_label"),
        ("k", str(k)),
        ("Label strategy", "weak"),
        ("Run key", run_key),
    ]
    for label, value in wanted:
        set_field(page, label, value)
        wait_until_executable(page)

    # a dynamic form is rendered again after each change: all still set
    for label, value in wanted:
        assert field_value(page, label) == value, label

    form_png = os.path.join(artifacts, "app_select_form.png")
    page.locator(".MuiDialog-paper, [role=dialog]").first.screenshot(
        path=form_png
    )
    _publish(form_png, "app_select_form.png")

    choose_immediate_execution(page)
    wait_until_executable(page)
    execute_button(page).click()
    output = wait_for_output(page, "Images selected")
    print(
        "\nApp: selection executed in %.1fs; output:\n%s"
        % (time.monotonic() - t0, output)
    )

    # what the App wrote
    ds.reload()
    assert names.debug_train_view in ds.list_saved_views()
    schema = ds.get_field_schema()
    assert names.distance in schema
    assert names.assigned_label in schema
    view = ds.load_saved_view(names.debug_train_view)
    got = dict(zip(*view.values(["id", names.distance])))
    assert re.search(r"\b%d\b" % len(got), output), output
    assert set(ds.match_tags(names.debug_train_tag).values("id")) == set(got)
    assert len(ds.exists(names.assigned_label)) == len(got)

    # brute-force k-NN: each E_sample image's k nearest pool images
    e_sample, pool = ds.match_tags("e_sample"), ds.match_tags("pool")
    p_ids, P = pool.values(["id", "dcd_embeddings"])
    Q = np.array(e_sample.values("dcd_embeddings"))
    expected = knn_union(Q, np.array(P), p_ids, k)
    assert len(got) == len(expected)
    assert set(got) == set(expected)
    for i, dist in got.items():
        assert dist == pytest.approx(expected[i], rel=1e-4, abs=1e-5)

    # and the same as the library's selection on another run key
    lib = fiftyone_dcd.select_debug_train(
        "pool",
        e_sample,
        "dcd_embeddings",
        k=k,
        label_strategy="weak",
        run_key="py",
    )
    assert set(lib.values("id")) == set(got)
    weak = dict(zip(*pool.values(["id", "weak_label.label"])))
    assigned = dict(zip(*view.values(["id", names.assigned_label + ".label"])))
    assert assigned == {i: weak[i] for i in got}


def test_every_operator_and_panel_is_in_the_app(
    page, app_server, select_dataset
):
    from playwright.sync_api import expect

    manifest = _manifest()
    module = _plugin_module()
    op_labels = _labels(module.OPERATORS)
    panel_labels = _labels(getattr(module, "PANELS", ()))

    open_dataset(page, app_server, select_dataset)
    search = open_operator_browser(page)
    for name in manifest["operators"]:
        assert name in op_labels, "%s is not registered" % name
        search.fill(op_labels[name])
        expect(page.get_by_text(op_labels[name], exact=True)).to_be_visible()
        # beside its label, the operator's name
        expect(page.get_by_text(name, exact=True).first).to_be_visible()

    page.keyboard.press("Escape")
    search.wait_for(state="hidden")

    panels = manifest.get("panels") or []
    if panels:
        page.locator("[data-cy=new-panel-btn]").first.click()
        for name in panels:
            assert name in panel_labels, "panel %s is not registered" % name
            expect(
                page.get_by_text(panel_labels[name], exact=True)
            ).to_be_visible()

        page.keyboard.press("Escape")


def test_results_panel_shows_the_latest_run(
    page, app_server, panel_dataset, artifacts
):
    # Contract of the panel `dcd_results` ("DCD results"): it shows the
    # latest DCD run of the dataset, each method's test and heldout
    # accuracy as text in percent with two decimals, and a plot.
    from playwright.sync_api import expect

    ds = panel_dataset
    _, results = fiftyone_dcd.load_run(ds, "latest")
    rows = results["rows"]
    assert [r["method"] for r in rows][-1] == "E_sample + random pool"

    open_dataset(page, app_server, ds)
    page.locator("[data-cy=new-panel-btn]").first.click()
    page.get_by_text("DCD results", exact=True).click()
    # the panel's body; its tab is in another container, the tab bar's
    panel = page.locator("[data-cy=panel-content-%s]" % PANEL_NAME)
    panel.wait_for()
    # the run picked in the panel's dropdown is the latest one
    expect(panel.get_by_role("combobox").first).to_have_text("latest")
    expect(panel.locator("table").first).to_be_visible()
    # the accuracies' columns of the methods' table, by their headers
    headers = [
        h.strip()
        for h in panel.locator("table").first.locator("th").all_inner_texts()
    ]
    assert "test acc" in headers and "heldout acc" in headers, headers
    test_col = headers.index("test acc")
    heldout_col = headers.index("heldout acc")

    for row in rows:
        test_pct = "%.2f" % (100 * row["test acc"])
        heldout_pct = "%.2f" % (100 * row["heldout acc"])
        expect(panel).to_contain_text(row["method"])
        expect(panel).to_contain_text(test_pct)
        expect(panel).to_contain_text(heldout_pct)
        # and both in the method's own row of the table
        tr = panel.locator("tr").filter(
            has=page.get_by_role("cell", name=row["method"], exact=True)
        )
        expect(tr).to_have_count(1)
        cells = [c.strip() for c in tr.locator("td").all_inner_texts()]
        assert cells[test_col] == test_pct, (row, headers, cells)
        assert cells[heldout_col] == heldout_pct, (row, headers, cells)

    plot = panel.locator(".js-plotly-plot").first
    expect(plot).to_be_visible()
    # the plot's numbers are the accuracies, in percent or as fractions
    traces = plot.evaluate(
        "el => (el.data || []).map(t => ({x: t.x, y: t.y}))"
    )
    assert traces, "the panel's plot has no data"
    plotted = {
        round(float(y), 2)
        for t in traces
        for y in (t["y"] or [])
        if y is not None
    }
    for row in rows:
        for key in ("test acc", "heldout acc"):
            assert (
                round(100 * row[key], 2) in plotted
                or round(row[key], 2) in plotted
            ), (key, row, plotted)

    png = os.path.join(artifacts, "app_results_panel.png")
    panel.screenshot(path=png)
    _publish(png, "app_results_panel.png")
