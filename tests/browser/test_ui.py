"""The Airflow UI as a user meets it, in headless chromium: log in, trigger image_classification
from its form with the embedded deployment's defaults, follow the task's "Run report" link, and
check the report against the run's own files. Screenshots go to the test's tmp folder."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.browser.conftest import PASSWORD, USER

DAG = "image_classification"
RUN_SECONDS = 900


def _by():
    from selenium.webdriver.common.by import By

    return By


def _wait(driver, condition, seconds: float = 30):
    """Poll `condition` until it holds; an element not there yet (selenium's default), or one
    React replaced meanwhile, is looked up again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, seconds, ignored_exceptions=(StaleElementReferenceException,))
    return wait.until(condition)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def user(browser, airflow, shots):
    """The browser, logged in through the login page."""
    By = _by()
    browser.get(f"{airflow.url}/")
    _wait(browser, lambda d: d.find_elements(By.NAME, "username"))
    browser.find_element(By.NAME, "username").send_keys(USER)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(browser, lambda d: d.get_cookie("_token"))
    browser.save_screenshot(str(shots / "1-logged-in.png"))
    return browser


def _open_trigger_form(browser, airflow, dag_id=DAG):
    """The DAG page's Trigger button opens the form; returns the dialog's Trigger button."""
    By = _by()
    browser.get(f"{airflow.url}/dags/{dag_id}")
    opener = _wait(
        browser, lambda d: d.find_element(By.CSS_SELECTOR, "button[aria-label='Trigger Dag']")
    )
    _click(browser, opener)
    trigger = _wait(
        browser,
        lambda d: next(
            (
                b
                for b in d.find_elements(By.CSS_SELECTOR, "[role=dialog] button")
                if b.text.strip() == "Trigger"
            ),
            None,
        ),
    )
    # The form's fields come after its buttons, once the DAG's params have arrived.
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "[role=dialog] [name^=element_]"))
    return trigger


SECTIONS = ("Training", "Champion gate", "Batch transform", "Machines")
TUNING = "Tuning"
"""The tuning DAGs' section, before Training."""


def _field(browser, name: str):
    """The form's field `name`; its section is opened first when it is closed (one section is
    open at a time), as a user looking for the field would."""
    By = _by()

    def shown():
        return next(
            (
                f
                # Inputs carry the name; a JSON field's editor only the id.
                for f in browser.find_elements(
                    By.CSS_SELECTOR, f"[name=element_{name}], #element_{name}"
                )
                if f.is_displayed()
            ),
            None,
        )

    present = {b.text.strip() for b in _section_buttons(browser)}
    for section in [None, *(s for s in (TUNING, *SECTIONS) if s in present)]:
        if section is not None:
            _open_section(browser, section)
        if found := shown():
            return found
    raise AssertionError(f"the form has no field {name}")


def _open_section(browser, section: str) -> None:
    """Open the form's section `section` (the one open before closes), and wait until its
    fields show: the section is marked expanded before it has grown into place."""
    [trigger] = [b for b in _section_buttons(browser) if b.text.strip() == section]
    if trigger.get_attribute("aria-expanded") == "false":
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", trigger)
        _click(browser, trigger)
        _wait(browser, lambda d: trigger.get_attribute("aria-expanded") == "true")
    content = trigger.get_attribute("aria-controls")
    _wait(browser, lambda d: d.find_element(_by().ID, content).text.strip())


def _form_text(browser) -> str:
    """The form's text, each of its sections opened in turn."""
    texts = [_report_text(browser)]
    for section in SECTIONS:
        _open_section(browser, section)
        texts.append(_report_text(browser))
    return "\n".join(texts)


def _done(action) -> bool:
    """`action` (a click, keys) went through; False while another element covers its element
    or it cannot take input yet (a section opening slides the others and grows into place)."""
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        ElementNotInteractableException,
    )

    try:
        action()
    except (ElementClickInterceptedException, ElementNotInteractableException):
        return False
    return True


def _click(browser, element) -> None:
    """Click `element` once it takes the click (for a moment another element can cover it)."""
    _wait(browser, lambda d: _done(element.click))


def _keys(browser, find, *strokes: tuple[str, ...]):
    """Send each of `strokes` to the field `find()` returns, as one attempt, retried until the
    field takes them all; returns the field. A field can refuse keys while its section grows
    into place, or stay refusing when the form re-renders its sections after it was found: each
    attempt finds the field again (its section opened again) and starts from the first stroke
    (a select-all)."""
    sent = []

    def send() -> None:
        field = find()
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", field)
        for keys in strokes:
            field.send_keys(*keys)
        sent.append(field)

    _wait(browser, lambda d: _done(send))
    return sent[-1]


def _section_buttons(browser) -> list:
    return browser.find_elements(_by().CSS_SELECTOR, "[role=dialog] button[aria-expanded]")


def _runs(airflow, dag_id=DAG) -> list[dict]:
    return airflow.api(f"/api/v2/dags/{dag_id}/dagRuns", token=airflow.token())["dag_runs"]


def _manual_runs(airflow, dag_id=DAG) -> list[dict]:
    """The runs people triggered (image_classification also has the scheduler's daily run)."""
    return [r for r in _runs(airflow, dag_id) if r["run_type"] == "manual"]


def _finished_run(browser, airflow, dag_id=DAG, *, before: set, state="success") -> dict:
    """The run the form's Trigger button started (none of the run ids `before`), once it ended
    in `state`."""

    def started() -> dict | None:
        return next((r for r in _runs(airflow, dag_id) if r["dag_run_id"] not in before), None)

    run = _wait(browser, lambda d: started())
    # Airflow's pages poll the API server every few seconds while a run is on them, and
    # rendering each answer kept a third of a core busy for as long as the run took: the page
    # is left (the run is followed through the API) and the test opens the next one by its URL.
    browser.get("about:blank")
    deadline = time.monotonic() + RUN_SECONDS
    while run["state"] not in ("success", "failed") and time.monotonic() < deadline:
        time.sleep(3)
        run = started()
    assert run["state"] == state, f"the run ended {run['state']}; see {airflow.log}"
    return run


def _run_ids(airflow, dag_id=DAG) -> set[str]:
    return {r["dag_run_id"] for r in _runs(airflow, dag_id)}


def _run_folder(airflow, dag_id, before: set) -> Path:
    """The run folder a run made (none of the folders `before`)."""
    (folder,) = set((airflow.data_root / "runs" / dag_id).glob("run=*")) - before
    return folder


def _open_report(browser, airflow, run_id, dag_id=DAG, shot=None, task="evaluate") -> None:
    """A step's Details tab has a "Run report" extra link: follow it to the run's report."""
    By = _by()
    path = f"/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task}/details"
    browser.get(airflow.url + path)
    link = _wait(
        browser,
        lambda d: next(
            (a for a in d.find_elements(By.TAG_NAME, "a") if a.text.strip() == "Run report"),
            None,
        ),
        60,
    )
    if shot:
        browser.save_screenshot(str(shot))
    _click(browser, link)
    _wait(browser, lambda d: "/vision-pipelines/" in d.current_url)
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "p.headline"))


def _pictures_load(browser) -> int:
    """How many pictures the page shows; each one must have loaded."""
    pictures = browser.find_elements(_by().TAG_NAME, "img")
    for picture in pictures:
        assert browser.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", picture
        ), picture.get_attribute("src")
    return len(pictures)


def test_anonymous_requests_are_refused(airflow):
    assert airflow.status("/vision-pipelines/") == 401
    assert airflow.status("/vision-pipelines/files/x/run=1/train/metrics.json") == 401
    assert airflow.status("/api/v2/dags") == 401


def _refused(browser, airflow, typed: dict[str, str], found: str, shot: Path):
    """Trigger from the form with the `typed` values: the dialog's refusal (found by `found`),
    no run made, kept in the screenshot `shot`."""
    trigger = _open_trigger_form(browser, airflow)
    for name, text in typed.items():
        _type_into(browser, name, text)
    _click(browser, trigger)
    message = _refusal_in_dialog(browser, found)
    browser.execute_script("arguments[0].scrollIntoView()", message)
    browser.save_screenshot(str(shot))
    return message


def _refusal_in_dialog(browser, text: str):
    """The refusal the dialog shows at its top after Trigger, found by `text`."""
    By = _by()
    return _wait(
        browser,
        lambda d: next(
            (
                e
                for e in d.find_elements(
                    By.XPATH, f"//*[@role='dialog']//*[contains(text(), \"{text}\")]"
                )
                if e.is_displayed()
            ),
            None,
        ),
    )


def _type_into(browser, name: str, text: str) -> None:
    _type_into_input(browser, lambda: _field(browser, name), text, name)


def _type_into_input(browser, find, text: str, name: str) -> None:
    """Replace what the field `find()` returns holds with `text`, as a person types it."""
    from selenium.webdriver.common.keys import Keys

    field = _keys(browser, find, (Keys.CONTROL, "a"), (text,))
    if field.get_attribute("value") != text:
        # Airflow's form re-renders a text field while keys arrive at machine speed and loses
        # one now and then: the value goes in as a paste does, in one input event.
        browser.execute_script(
            "const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value');"
            "set.set.call(arguments[0], arguments[1]);"
            "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));",
            field,
            text,
        )
    value = field.get_attribute("value")
    assert value == text, f"the {name} field holds {value!r}, not {text!r}"


@pytest.mark.parametrize(
    "name, title, typed, allowed",
    [
        ("learning_rate", "Learning rate", "0", "a number in (0, 1]"),
        ("epochs", "Epochs", "0", "an integer"),
        # image_shape's height: one number field of three (it was one text field with a
        # regular expression the refusal quoted).
        ("image_height", "Image height", "4", "an integer from 8 to"),
    ],
)
def test_a_value_below_its_minimum_is_refused_not_changed(
    user, airflow, shots, name, title, typed, allowed
):
    """The form keeps what was typed (Airflow's number input clamps to a schema `minimum` when
    the field is left: epochs 0 once became 1 and ran) and Trigger refuses it in one sentence."""
    browser = user
    message = _refused(
        browser,
        airflow,
        {name: typed},
        f"[{title}] {name} got",
        shots / f"2-{name}-below-minimum.png",
    )
    assert message.text.startswith(f"[{title}] {name} got {typed}; allowed: {allowed}"), (
        message.text
    )
    assert _manual_runs(airflow) == []


def test_letters_in_a_number_field_are_refused_not_run(user, airflow, shots):
    """The image shape's height typed as "x" (a structured value as the person may type it):
    the number field keeps no letters, says under itself that it needs a value, and the run
    cannot be triggered with some other height."""
    from selenium.webdriver.common.keys import Keys

    By, browser = _by(), user
    trigger = _open_trigger_form(browser, airflow)
    field = _keys(
        browser, lambda: _field(browser, "image_height"), (Keys.CONTROL, "a"), (Keys.BACKSPACE, "x")
    )
    required = "//*[normalize-space(text())='This field is required']"
    said = _wait(
        browser, lambda d: [e for e in d.find_elements(By.XPATH, required) if e.is_displayed()]
    )
    browser.save_screenshot(str(shots / "2-letters-in-image-height.png"))
    # One message, the emptied field's: its box holds the message and the height field alone.
    box = said[0].find_element(By.XPATH, "ancestor::*[.//input][1]")
    assert [i.get_attribute("name") for i in box.find_elements(By.TAG_NAME, "input")] == [
        "element_image_height"
    ]
    assert len(said) == 1
    assert field.get_attribute("value") == ""
    assert not trigger.is_enabled()
    assert _manual_runs(airflow) == []


def test_several_machines_with_the_local_runner_are_refused_in_the_form(user, airflow, shots):
    browser = user
    message = _refused(
        browser,
        airflow,
        {"instance_count": "2"},
        "[Machines]",
        shots / "2-several-machines-locally.png",
    )
    assert "[Machines] instance_count 2 needs a runner that trains on several" in message.text
    assert "[Runner] local trains on one" in message.text
    assert _manual_runs(airflow) == []


def _report_text(browser) -> str:
    return browser.find_element(_by().TAG_NAME, "body").text


def _run_form_defaults(browser, airflow, shots, dag_id, shot_names, link_shot=None):
    """Trigger `dag_id` from its form with the defaults, wait for the run's success and open its
    report; returns (the form's text, the run, the run's folder). Screenshots: `shot_names`
    (the form, the report)."""
    form_shot, report_shot = shot_names
    folders = set((airflow.data_root / "runs" / dag_id).glob("run=*"))
    before = _run_ids(airflow, dag_id)
    trigger = _open_trigger_form(browser, airflow, dag_id)
    browser.save_screenshot(str(shots / form_shot))
    form = _form_text(browser)
    assert trigger.is_enabled(), "the Trigger button is disabled with the form's defaults"
    _click(browser, trigger)
    run = _finished_run(browser, airflow, dag_id, before=before)
    _open_report(browser, airflow, run["dag_run_id"], dag_id, shot=link_shot)
    browser.save_screenshot(str(shots / report_shot))
    return form, run, _run_folder(airflow, dag_id, folders)


def test_trigger_with_defaults_then_open_the_report(user, airflow, shots):
    By, browser = _by(), user
    _, run, folder = _run_form_defaults(
        browser,
        airflow,
        shots,
        DAG,
        ("3-trigger-form.png", "5-report.png"),
        link_shot=shots / "4-task-extra-links.png",
    )
    assert run["conf"] in ({}, None) or run["conf"].get("epochs") == 10
    run_id = run["dag_run_id"]

    evaluation = json.loads((folder / "evaluate" / "evaluation.json").read_text())
    final = json.loads((folder / "train" / "metrics.json").read_text())["final"]
    page = _report_text(browser)
    assert f"accuracy {evaluation['accuracy']:.4f}" in page
    assert f"{final['validation_accuracy']:.4f}" in page
    assert run_id in page and "success" in page
    params = browser.find_element(By.CSS_SELECTOR, "table.params").text
    assert "num_layers 20" in params
    assert {"image_channels 3", "image_height 32", "image_width 32"} <= set(params.splitlines())
    # The gate's decision (the first model: no champion to compare with) and its reasons.
    gate = json.loads((folder / "gate" / "gate.json").read_text())
    verdict = "promoted" if gate["promote"] else "champion kept"
    assert f"Gate: {verdict}" in page
    reasons = browser.find_element(By.CSS_SELECTOR, "ul.gate-reasons").text.splitlines()
    assert reasons == gate["reasons"]
    assert _pictures_load(browser) >= 2
    # Pictures under headings in words; batch transform's first predictions (issue 43).
    headings = [h.text for h in browser.find_elements(By.TAG_NAME, "h3")]
    assert {"Learning curves (training)", "Confusion matrix (evaluation)"} <= set(headings)
    assert not any("/" in h for h in headings), headings
    first = json.loads(
        (folder / "batch_transform" / "predictions.jsonl").read_text().splitlines()[0]
    )
    shown = browser.find_element(By.CSS_SELECTOR, "table.predictions").text
    assert first["source-ref"] in shown
    # The data-quality step's outcomes (Great Expectations) and its Data Docs page.
    quality = json.loads((folder / "quality" / "quality.json").read_text())
    outcomes = browser.find_element(By.CSS_SELECTOR, "table.quality").text
    assert all(o["expectation"] in outcomes for o in quality["results"])
    data_docs = browser.find_element(By.CSS_SELECTOR, "a.data-docs").get_attribute("href")
    # ... and links back to the run in Airflow.
    report_url = browser.current_url
    back = browser.find_element(By.CSS_SELECTOR, "a.airflow-run")
    _click(browser, back)
    _wait(browser, lambda d: f"/dags/{DAG}/runs/" in d.current_url)

    # The pipeline page lists the run, its gate verdict, and whether it is the champion.
    browser.get(report_url.split("/vision-pipelines/")[0] + "/vision-pipelines/")
    row = _wait(browser, lambda d: d.find_elements(By.XPATH, f"//tr[td[text()='{run_id}']]"))[0]
    browser.save_screenshot(str(shots / "6-pipeline-page.png"))
    assert verdict in row.text
    assert (row.get_attribute("class") == "champion") is gate["promote"]
    # The page fits the window (no sideways scrolling), and Airflow shows it in its own UI.
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"
    )
    browser.get(report_url.split("/vision-pipelines/")[0] + "/plugin/training-runs")
    frame = _wait(browser, lambda d: d.find_elements(By.TAG_NAME, "iframe"))[0]
    assert frame.get_attribute("src").rstrip("/").endswith("/vision-pipelines")
    browser.switch_to.frame(frame)
    _wait(browser, lambda d: run_id in d.find_element(By.TAG_NAME, "body").text)
    browser.switch_to.default_content()
    browser.save_screenshot(str(shots / "6a-training-runs-in-airflow.png"))
    # The run's own page in Airflow has the report as a tab, inside Airflow's frame (issue 43).
    browser.get(f"{airflow.url}/dags/{DAG}/runs/{quote(run_id, safe='')}/plugin/run-report")
    frame = _wait(browser, lambda d: d.find_elements(By.TAG_NAME, "iframe"), 60)[0]
    browser.switch_to.frame(frame)
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "p.headline"), 60)
    assert f"accuracy {evaluation['accuracy']:.4f}" in _report_text(browser)
    browser.switch_to.default_content()
    browser.save_screenshot(str(shots / "6c-run-report-tab.png"))
    browser.get(data_docs)
    _wait(browser, lambda d: "Overview" in d.find_element(By.TAG_NAME, "body").text)
    browser.save_screenshot(str(shots / "6b-data-docs.png"))
    # Read offline (no CDN here): status icons drawn, the run named, no "None" divergence.
    icon = browser.find_element(By.CSS_SELECTOR, ".fa-check-circle")
    drawn = browser.execute_script(
        "return getComputedStyle(arguments[0], '::before').content", icon
    )
    assert drawn == '"\u2714"', drawn
    docs = _report_text(browser)
    assert run_id in docs and "__none__" not in docs and "None (-infinity" not in docs


def _runs_page_row(browser, airflow, run_id):
    """The run's row on the report index (the Training runs page)."""
    By = _by()
    browser.get(f"{airflow.url}/vision-pipelines/")
    return _wait(browser, lambda d: d.find_elements(By.XPATH, f"//tr[td[text()='{run_id}']]"))[0]


def test_a_run_that_keeps_the_champion_reads_as_a_decision(user, airflow, shots):
    """A model below the form's floor is not promoted: the run succeeds, and its report and the
    runs page say "champion kept", not that promote failed."""
    browser = user
    before, folders = _run_ids(airflow), set((airflow.data_root / "runs" / DAG).glob("run=*"))
    trigger = _open_trigger_form(browser, airflow)
    _type_into(browser, "min_primary_metric", "1")
    _type_into(browser, "epochs", "1")
    _click(browser, trigger)
    run = _finished_run(browser, airflow, before=before)
    gate = json.loads((_run_folder(airflow, DAG, folders) / "gate" / "gate.json").read_text())
    assert gate["promote"] is False
    _open_report(browser, airflow, run["dag_run_id"])
    browser.save_screenshot(str(shots / "5a-champion-kept-report.png"))
    page = _report_text(browser)
    assert "Gate: champion kept" in page
    for failure_words in ("Failures", "failed in", "Skip", "internal error"):
        assert failure_words not in page
    row = _runs_page_row(browser, airflow, run["dag_run_id"]).text
    assert "champion kept" in row and "fail" not in row
    # ... and the promote step's log in Airflow says why (it is skipped, not failed).
    log = _task_log(browser, airflow, run["dag_run_id"], "promote", "the champion stays")
    browser.save_screenshot(str(shots / "5d-promote-log-champion-kept.png"))
    for reason in gate["reasons"]:
        assert f"the champion stays: {reason}" in log


def _task_log(browser, airflow, run_id: str, task: str, words: str, dag_id=DAG) -> str:
    """The text of a task's log as its page in Airflow shows it, once `words` are in it."""
    By = _by()
    browser.get(f"{airflow.url}/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task}")
    _wait(browser, lambda d: words in d.find_element(By.TAG_NAME, "body").text, 60)
    return _report_text(browser)


def test_a_scheduled_run_after_a_manual_promotion_is_gated_on_its_score(user, airflow, shots):
    """Issue 43: the daily run of image_classification (made by the scheduler as the tests
    began) runs again after a manual run was promoted: its data are as current as the manual
    run's, so the gate compares scores and never calls it a backfill."""
    By, browser = _by(), user
    (scheduled,) = [r for r in _runs(airflow) if r["run_type"] == "scheduled"]
    before = _run_ids(airflow)
    # The manual run is promoted whatever its accuracy (any loss tolerated).
    trigger = _open_trigger_form(browser, airflow)
    _type_into(browser, "min_improvement", "-1")
    _type_into(browser, "max_class_drop", "1")
    _type_into(browser, "epochs", "2")
    _click(browser, trigger)
    manual = _finished_run(browser, airflow, before=before)
    pointer = json.loads((airflow.data_root / "models" / DAG / "champion.json").read_text())
    assert pointer["champion"]["run_id"] == manual["dag_run_id"]
    # The scheduled run's page: Clear Dag Run, Confirm; it runs again, now after the promotion.
    run_id = scheduled["dag_run_id"]
    browser.get(f"{airflow.url}/dags/{DAG}/runs/{quote(run_id, safe='')}")
    # The run's own Clear button (an icon; its label is its keyboard shortcut's tooltip).
    clear = _wait(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, "button[aria-label='Press shift+c to clear']"),
        60,
    )
    _click(browser, clear)
    confirm = _wait(
        browser,
        lambda d: next(
            (
                b
                for b in d.find_elements(By.CSS_SELECTOR, "[role=dialog] button")
                if b.text.strip() == "Confirm" and b.is_enabled()
            ),
            None,
        ),
        60,
    )
    browser.save_screenshot(str(shots / "10a-clear-scheduled-run.png"))
    _click(browser, confirm)
    browser.get("about:blank")

    def rerun() -> dict | None:
        run = next(r for r in _runs(airflow) if r["dag_run_id"] == run_id)
        ended = run["state"] in ("success", "failed") and run["end_date"] != scheduled["end_date"]
        return run if ended else None

    run = _wait(browser, lambda d: rerun(), RUN_SECONDS)
    assert run["state"] == "success", f"the scheduled run ended {run['state']}; see {airflow.log}"
    key = scheduled["logical_date"][:19].replace("-", "").replace(":", "")
    folder = airflow.data_root / "runs" / DAG / f"run={key}"
    gate = json.loads((folder / "gate" / "gate.json").read_text())
    assert gate["champion_run_id"] == manual["dag_run_id"]
    assert not any("backfill" in reason for reason in gate["reasons"]), gate["reasons"]
    assert any("vs the champion's" in reason for reason in gate["reasons"]), gate["reasons"]
    if gate["challenger"] < gate["champion"]:  # the default minimum improvement: not worse
        assert gate["promote"] is False
    words = "champion of image_classification is now" if gate["promote"] else "the champion stays"
    log = _task_log(browser, airflow, run_id, "promote", words)
    browser.save_screenshot(str(shots / "10b-scheduled-run-promote-log.png"))
    assert "backfill" not in log


def test_a_missing_dataset_is_refused_in_the_dialog(user, airflow, shots):
    """Trigger with a dataset that does not exist, then with one that holds no dataset: the
    dialog says so in one sentence, naming the form's field and what the data-prep step reads,
    and no run is made (it used to start a run that failed in its first step)."""
    browser = user
    before = _run_ids(airflow)
    missing = f"file://{airflow.data_root}/datasets/no-such-dataset"
    message = _refused(
        browser,
        airflow,
        {"dataset_uri": missing},
        f"[Dataset] dataset_uri {missing} does not exist",
        shots / "5b-missing-dataset-refused.png",
    )
    assert message.text.startswith(
        f"[Dataset] dataset_uri {missing} does not exist; allowed: a folder of class folders "
        "(<class>/<image>.jpg|.png) or an augmented manifest (.manifest/.jsonl)"
    ), message.text
    # The form's fields in sections, in this order.
    headings = [b.text.strip() for b in _section_buttons(browser) if b.text.strip() in SECTIONS]
    assert headings == list(SECTIONS), headings
    # A location that exists but holds no dataset (it used to start a run that walked /etc).
    message = _refused(
        browser,
        airflow,
        {"dataset_uri": "file:///etc"},
        "[Dataset] dataset_uri file:///etc holds no class",
        shots / "5c-not-a-dataset-refused.png",
    )
    assert message.text.startswith(
        "[Dataset] dataset_uri file:///etc holds no class folder with images; allowed: a folder "
        "of class folders"
    ), message.text
    assert _run_ids(airflow) == before


def _type_json(browser, name: str, text: str) -> None:
    """Replace what the form's JSON field `name` (an object Param: a Monaco code editor) holds
    with `text`, as a person pastes it: select all, paste. (Typed at machine speed, the editor
    loses keys, as Airflow's text fields do.) The refusal that follows quotes what arrived."""
    from selenium.webdriver.common.keys import Keys

    By = _by()

    def focused_editor():
        field = _field(browser, name)  # its section opened
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", field)
        # Monaco mounts its editor a moment after the field shows: until then there is no
        # textbox, and the wait looks again.
        editor = field.find_element(By.CSS_SELECTOR, "[role=textbox]")
        field.click()
        return editor

    editor = _keys(browser, focused_editor, (Keys.CONTROL, "a"))
    browser.execute_script(
        "const data = new DataTransfer(); data.setData('text/plain', arguments[1]);"
        "arguments[0].dispatchEvent(new ClipboardEvent('paste', "
        "{clipboardData: data, bubbles: true, cancelable: true}));",
        editor,
        text,
    )


LOG_RATE = {"type": "continuous", "min": 1e-4, "max": 0.1, "scale": "log"}


@pytest.mark.parametrize(
    "space, words",
    [
        (
            {"learning_rate": {**LOG_RATE, "max": 1.5}},
            "search space 'learning_rate': max 1.5 is outside the hyperparameter's allowed",
        ),
        (
            {"learning_rate": {**LOG_RATE, "min": 0.5}},
            "search space 'learning_rate': min 0.5 is above max 0.1",
        ),
        (
            {"learnin_rate": LOG_RATE},
            "search space 'learnin_rate': image-classification has no such hyperparameter",
        ),
        (
            {"momentum": {**LOG_RATE, "min": 0, "max": 0.9}},
            "search space 'momentum': a log scale needs min > 0",
        ),
    ],
)
def test_a_bad_search_space_is_refused_in_the_tuning_dialog(user, airflow, shots, space, words):
    """Issue 41: the tuning form's search space, checked against the algorithm's table in the
    dialog (one sentence naming the field); no run is made. The objective offers only the
    metrics the algorithm reports."""
    browser, dag_id = user, "image_classification_tuning"
    trigger = _open_trigger_form(browser, airflow, dag_id)
    _type_json(browser, "search_space", json.dumps(space))
    assert "validation:accuracy (maximize)" in _report_text(browser)  # the Tuning section
    _click(browser, trigger)
    message = _refusal_in_dialog(browser, words)
    browser.execute_script("arguments[0].scrollIntoView()", message)
    slug = "-".join(words.split("'")[1:3]).replace(" ", "")[:30]
    browser.save_screenshot(str(shots / f"8-search-space-{slug}.png"))
    assert "\n" not in message.text
    assert _runs(airflow, dag_id) == []


def _pick_date(browser, which: int, date: str) -> None:
    """Set the backfill dialog's `which` date (0: From, 1: To) to `date` (YYYY/MM/DD) at 00:00
    through its picker, as a person types it."""
    By = _by()
    picker = browser.find_elements(By.CSS_SELECTOR, "[role=dialog] [data-testid=datetime-input]")
    _click(browser, picker[which])
    popover = _wait(
        browser,
        lambda d: next(
            (
                p
                for p in d.find_elements(
                    By.CSS_SELECTOR, "[data-scope=popover][data-part=content][data-state=open]"
                )
                if p.is_displayed() and p.find_elements(By.CSS_SELECTOR, "input")
            ),
            None,
        ),
    )
    day, time_of_day = popover.find_elements(By.CSS_SELECTOR, "input")
    _type_into_input(browser, lambda: day, date, "date")
    _type_into_input(browser, lambda: time_of_day, "00:00", "time")
    # A click outside closes the picker (Escape would close the whole dialog).
    _click(
        browser,
        browser.find_element(
            By.XPATH, "//*[@role='dialog']//*[normalize-space(text())='Date Range']"
        ),
    )
    _wait(browser, lambda d: "Select date" not in picker[which].text)


def test_a_backfill_of_two_dates_runs_from_the_dialog_and_keeps_its_own_outputs(
    user, airflow, shots
):
    """Issue 43: the pipelines have a daily schedule (paused by default; here unpaused, with
    the scheduler's own runs off), so the Trigger dialog's Backfill is offered. Two dates: two
    backfill runs, each writing under its own run=<date> folder through the gate, and the API
    server answers the dialog (SQLite waits for its lock: no 503)."""
    browser = user
    trigger = _open_trigger_form(browser, airflow)
    By = _by()
    _click(
        browser,
        browser.find_element(
            By.XPATH, "//*[@role='dialog']//*[normalize-space(text())='Backfill']"
        ),
    )
    _pick_date(browser, 0, "2026/12/01")
    _pick_date(browser, 1, "2026/12/02")
    _wait(browser, lambda d: "2 runs will be triggered" in _report_text(d))
    browser.save_screenshot(str(shots / "9-backfill-dialog.png"))
    run = next(
        b
        for b in browser.find_elements(By.CSS_SELECTOR, "[role=dialog] button")
        if b.text.strip() == "Run Backfill"
    )
    assert trigger is not None and run.is_enabled()
    _click(browser, run)

    def backfilled() -> list[dict]:
        runs = [r for r in _runs(airflow) if r["run_type"] == "backfill"]
        return runs if len(runs) == 2 and all(r["state"] == "success" for r in runs) else []

    runs = _wait(browser, lambda d: backfilled(), RUN_SECONDS)
    dates = sorted(r["logical_date"][:10] for r in runs)
    assert dates == ["2026-12-01", "2026-12-02"]
    for key in ("20261201T000000", "20261202T000000"):
        folder = airflow.data_root / "runs" / DAG / f"run={key}"
        assert (folder / "train" / "model.tar.gz").is_file()
        assert "promote" in json.loads((folder / "gate" / "gate.json").read_text())
        assert (folder / "batch_transform" / "predictions.jsonl").is_file()
        assert json.loads((folder / "run.json").read_text())["run_id"].startswith("backfill__")


def test_transfer_learning_from_its_form_defaults_to_the_report(user, airflow, shots):
    """image_classification_tf with its form's defaults: the embedded deployment's own module
    (made here, in its offline mirror) is the default model, fine-tuned to a report."""
    browser, dag_id = user, "image_classification_tf"
    registry = json.loads((airflow.data_root / "hub" / "registry.json").read_text())
    (ours,) = [m["model_id"] for m in registry["models"]]
    form, _, folder = _run_form_defaults(
        browser, airflow, shots, dag_id, ("9-transfer-form.png", "10-transfer-report.png")
    )
    assert f"{ours} (offline)" in form
    assert json.loads((folder / "train" / "metrics.json").read_text())["model_id"] == ours
    evaluation = json.loads((folder / "evaluate" / "evaluation.json").read_text())
    headline = browser.find_element(_by().CSS_SELECTOR, "p.headline").text
    assert f"accuracy {evaluation['accuracy']:.4f}" in headline
    assert _pictures_load(browser) >= 2


def test_segmentation_from_its_form_defaults_to_the_report(user, airflow, shots):
    """The laptop recipe of the form (FCN, no pre-trained encoder, crop 64) on the embedded
    deployment's scenes: the run succeeds and its report shows mIoU and the per-class IoU."""
    By, browser, dag_id = _by(), user, "semantic_segmentation"
    form, _, folder = _run_form_defaults(
        browser, airflow, shots, dag_id, ("7-segmentation-form.png", "8-segmentation-report.png")
    )
    assert "Label map" in form and "num_classes" in form
    evaluation = json.loads((folder / "evaluate" / "evaluation.json").read_text())
    assert browser.find_element(By.CSS_SELECTOR, "p.headline").text == (
        f"mIoU {evaluation['mIoU']:.4f}"
    )
    per_class = browser.find_element(By.CSS_SELECTOR, "table.per-class").text
    scored = [v["iou"] for v in evaluation["per_class"].values() if v["iou"] is not None]
    assert scored and all(f"iou {iou:.4f}" in per_class for iou in scored)
    assert _pictures_load(browser) >= 2  # confusion matrix, overlays, learning curves


@pytest.mark.parametrize("width", [1400, 1600])
def test_the_runs_table_breaks_a_long_message_between_words(browser, tmp_path, width):
    """Issue 43: at 1600 px a long message in the Training runs table broke the other columns'
    words (and its own) anywhere. Short cells stay on one line; the message wraps at spaces."""
    from tasks.run_report import RunSummary, StepFailure, render_index

    reason = "trained on data of 2026-12-06T00:00:00+00:00, older than the champion's " * 3
    runs = [
        RunSummary(
            pipeline="image_classification_tf", run=f"run=2026120{i}T000000", folder=tmp_path,
            training=None, evaluation=None, pictures=[],
            record={"dag_id": "image_classification_tf",
                    "run_id": f"scheduled__2026-12-0{i}T00:00:00+00:00"},
            failures=[StepFailure("gate", reason)] if i == 1 else [],
            gate={"promote": False, "reasons": [reason]},
        )
        for i in (1, 2)
    ]  # fmt: skip
    page = tmp_path / "runs.html"
    page.write_text(render_index(runs, {("image_classification_tf", runs[0].run_id): "success"}))
    browser.set_window_size(width, 1000)
    try:
        browser.get(page.as_uri())
        lines = browser.execute_script(
            """
            const height = (cell) => {
              const range = document.createRange(); range.selectNodeContents(cell);
              return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
            };
            const rows = [...document.querySelectorAll('table tr')].slice(1);
            return rows.map(row => [...row.cells].map(height));
            """
        )
        assert browser.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth"
        )
        for row in lines:
            pipeline, folder, run_id, state, result, gate, current = row
            assert pipeline == 1 and gate <= 1 and state <= 1 and current <= 1, row
        broken = browser.execute_script(
            """
            const cell = document.querySelector('table tr:nth-child(2) td:nth-child(5)');
            const node = cell.firstChild;
            const words = [], text = node.textContent;
            for (const match of text.matchAll(/\\S+/g)) {
              const range = document.createRange();
              range.setStart(node, match.index);
              range.setEnd(node, match.index + match[0].length);
              const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
              if (tops.size > 1) words.push(match[0]);
            }
            return [words, cell.getClientRects()[0].height];
            """
        )
        assert broken[0] == [], broken  # the message's lines break between its words
    finally:
        browser.set_window_size(1400, 1000)
