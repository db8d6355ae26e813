"""``xai-core report``: one self-contained HTML file (and PDF) about a run, checked against the
run's own tables with independent computations (pandas, scikit-learn)."""

import base64
from html import escape as html_escape
import io
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import dash_runs
import pages_runs
from xai_core.cli import main
from xai_core.dashboard import RunTables
from xai_core.dashboard.assessment import RowFilter, metric_infos
from xai_core.report import ReportOptions, report_html, write_report
from xai_core.report.gallery import pick_rows
from xai_core.summary import RunReader


class _Refs(HTMLParser):
    """Every src/href of the document, the scripts with a src, and the images' sources."""

    def __init__(self):
        super().__init__()
        self.refs, self.images, self.script_srcs, self.tables = [], [], [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k in ("src", "href"):
            if a.get(k):
                self.refs.append(a[k])
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag == "script" and a.get("src"):
            self.script_srcs.append(a["src"])
        self.tables += tag == "table"


@pytest.fixture(scope="module")
def run_a(pages_logdir):
    return pages_logdir / pages_runs.RUN_A


@pytest.fixture(scope="module")
def html(run_a):
    return report_html(RunTables.load(run_a), pages_runs.RUN_A)


def test_self_contained_every_image_embedded_and_decodable(html):
    p = _Refs()
    p.feed(html)
    assert not p.script_srcs                                      # plotly's bundle is inline, no CDN
    assert "Plotly.newPlot" in html and len(re.findall(r"<script", html)) >= 2
    external = [r for r in p.refs if not (r.startswith("data:") or r.startswith("#"))]
    assert external == []
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html)    # no CSS fetches either
    assert len(p.images) == 3 * 2 * 3 * 2                         # 3 explainers × (3 best + 3 worst) × 2 pictures
    for src in p.images:
        head, data = src.split(",", 1)
        assert head == "data:image/png;base64"
        Image.open(io.BytesIO(base64.b64decode(data))).verify()


def test_identity_tags_and_classification_match_the_run(run_a, html):
    r = RunReader(run_a)
    labels = r.labels()
    for tag in ("TP", "FP", "FN", "TN"):
        assert f"<span>{tag} {int((labels['tag'] == tag).sum())}</span>" in html
    m = r.manifest
    assert m["dataset"]["sha256"] in html and "toy:colour_net" in html and m["created"] in html
    assert "&quot;deletion_auc&quot;" in html                    # the configuration, escaped

    from sklearn.metrics import average_precision_score, f1_score

    s = r.samples()
    k = len(m["classes"])
    gt = np.zeros((len(s), k), bool)
    for i, g in enumerate(s["gt_labels"]):
        gt[i, list(g)] = True
    pred = np.zeros_like(gt)
    idx = {v: i for i, v in enumerate(s["sample_index"])}
    for si, lab, tag in zip(labels["sample_index"], labels["label"], labels["tag"]):
        pred[idx[si], lab] = tag in ("TP", "FP")
    probs = np.stack(s["probs"].to_numpy())
    micro = f1_score(gt, pred, average="micro")
    mAP = np.mean([average_precision_score(gt[:, c], probs[:, c]) for c in range(k) if gt[:, c].any()])
    for name, want in (("micro-F1", micro), ("mAP", mAP), ("exact match", (gt == pred).all(1).mean())):
        assert re.search(rf"<td>{name}</td>\s*<td>{want:.3f}</td>", html), name


def test_ranking_with_weights_and_intervals(run_a):
    t = RunTables.load(run_a)
    h = report_html(t, "x", ReportOptions(weights={"deletion_auc": 3, "sparseness": 1}))
    # the metrics not named keep weight 1
    assert "Deletion (1 − AUC) 0.500" in h and "Sparseness (Gini) 0.167" in h and "Pointing Game 0.167" in h
    frame = next(f for f in _tables(h) if "comprehensive" in f.columns)
    from xai_core.dashboard import assessment as A

    long = A.explainer_metric_table(t)
    want = A.comprehensive(long, {"deletion_auc": 3, "sparseness": 1, "pointing_game": 1, "class_sensitivity": 1})
    assert frame["explainer"].tolist() == want["explainer"].tolist()
    np.testing.assert_allclose(frame["comprehensive"].astype(float), want["score"], atol=5e-4)
    # every mean with its interval: "0.863 [0.854, 0.870]"
    assert all(re.fullmatch(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]|—", str(v)) for v in frame["Deletion (1 − AUC)"])


def test_gallery_holds_the_best_and_worst_tp_rows_by_the_metric(run_a):
    t = RunTables.load(run_a)
    r = RunReader(run_a)
    sc = r.scores().merge(r.labels()[["sample_index", "label", "tag"]], on=["sample_index", "label"])
    g = sc[(sc.explainer == "gradcam") & (sc.metric == "deletion_auc") & (sc.tag == "TP")].dropna(subset=["score"])
    deletion = next(m for m in metric_infos(t) if m.name == "deletion_auc")
    best, worst = pick_rows(t, "gradcam", deletion, 3, RowFilter(("TP",), ("TP",)))
    vals = t.pair_values("gradcam", "deletion_auc")
    assert vals[best].tolist() == sorted(g["score"], reverse=True)[:3]
    assert vals[worst].tolist() == sorted(g["score"])[:3]
    assert set(t.lcol("tag")[np.r_[best, worst]]) == {0}          # TP only, by default
    assert not set(best) & set(worst)


def test_sanity_verdicts_and_a_run_without_scores(tmp_path):
    run = dash_runs.write_synthetic(tmp_path / "s", sanity={"a": {"passed": True, "final_similarity": 0.12},
                                                            "b": {"passed": False, "final_similarity": 0.93}})
    h = report_html(RunTables.load(run), "s")
    assert "passed (similarity 0.120)" in h and "FAILED (similarity 0.930)" in h
    bare = RunTables.load(dash_runs.write_failed(tmp_path / "f"))
    h = report_html(bare, "f")
    assert "no evaluation scores" in h and "failed" in h and html_escape(dash_runs.FAILED_ERROR) in h


def test_cli_writes_the_report_and_refuses_bad_options_in_one_line(run_a, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(run_a), "--out", str(out), "--weight", "deletion_auc=2", "--per-explainer", "1"]) == 0
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and len(_images(text)) == 3 * 2 * 2
    assert f"report written to {out}" in capsys.readouterr().out
    for bad, what in ((["--weight", "nope=1"], "no scores of"), (["--weight", "deletion_auc"], "METRIC=WEIGHT"),
                      (["--tags", "TP,XX"], "unknown tag"), (["--metric", "class_sensitivity"], "no per-label scores"),
                      (["--per-explainer", "50"], "expected 0 … 12")):
        assert main(["report", str(run_a), "--out", str(tmp_path / "x.html"), *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert what in err and "\n" not in err and "Traceback" not in err
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no manifest.json" in capsys.readouterr().err


class _Tables(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self._cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(self._cell.strip())
            self._cell = None


def _tables(text) -> list[pd.DataFrame]:
    p = _Tables()
    p.feed(text)
    return [pd.DataFrame(t[1:], columns=t[0]) for t in p.tables if len(t) > 1]


def _images(text):
    p = _Refs()
    p.feed(text)
    return p.images


def test_pdf_has_every_picture_and_fetches_nothing(run_a, tmp_path):
    weasyprint = pytest.importorskip("weasyprint")
    out = write_report(run_a, tmp_path / "r.pdf", pdf=True)
    data = out.read_bytes()
    assert data.startswith(b"%PDF-")
    html = report_html(RunTables.load(run_a), str(run_a), charts=False)
    assert "Plotly" not in html and "no interactive charts" in html
    assert data.count(b"/Subtype /Image") == len(set(_images(html)))     # identical pictures are stored once
    assert len(weasyprint.HTML(string=html).render().pages) >= 3
    from xai_core.report.pdf import html_to_pdf

    # an outside reference is never fetched: the picture is dropped, the PDF still made
    leaky = html.replace("</body>", '<img src="file:///etc/hostname"><img src="http://127.0.0.1:9/x.png"></body>')
    assert html_to_pdf(leaky).count(b"/Subtype /Image") == len(set(_images(html)))


def test_class_names_carrying_html_are_text_in_the_report(tmp_path):
    """Class names come from the user's dataset: in the report they are text, never markup."""
    evil = ['<script>alert("c")</script>', '<img src=x onerror=alert(1)>', "</script><b>x</b>"]
    run = dash_runs.write_synthetic(tmp_path / "evil", classes=evil)
    doc = report_html(RunTables.load(run), "evil")

    class Tags(HTMLParser):
        seen: list = []

        def handle_starttag(self, tag, attrs):
            self.seen.append((tag, dict(attrs)))

    p = Tags()
    p.feed(doc)
    assert not any("onerror" in a for _, a in p.seen)
    assert all(a.get("src", "").startswith("data:") for t, a in p.seen if t == "img")
    assert "<b>x</b>" not in doc and 'alert("c")</script>' not in doc
    assert html_escape(evil[1], quote=True) in doc  # shown, as text
