import base64
import math
import os

import pytest

from tellkit.report.html import markdown_to_html, md_table, write_report

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def test_inlines_images_and_renders_tables(tmp_path):
    (tmp_path / "x.png").write_bytes(PNG)
    md = "# Results\n\n![loss](x.png)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```\ncode\n```\n"
    page = markdown_to_html(md, tmp_path, title="R & D")
    assert 'src="x.png"' not in page
    assert "data:image/png;base64," + base64.b64encode(PNG).decode() in page
    assert "<table>" in page and "<pre><code>" in page
    assert "<title>R &amp; D</title>" in page
    assert "http://" not in page and "https://" not in page  # self-contained


def test_missing_image_fails(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        markdown_to_html("![a](nope.png)", tmp_path, title="t")


def test_data_uri_left_alone(tmp_path):
    page = markdown_to_html("![a](data:image/png;base64,AAAA)", tmp_path, title="t")
    assert "data:image/png;base64,AAAA" in page


def test_write_report(tmp_path):
    (tmp_path / "fig.png").write_bytes(PNG)
    md_path, html_path = write_report("![f](fig.png)\n", tmp_path, stem="summary")
    assert md_path == tmp_path / "summary.md" and html_path == tmp_path / "summary.html"
    assert md_path.read_text(encoding="utf-8") == "![f](fig.png)\n"
    assert "data:image/png;base64," in html_path.read_text(encoding="utf-8")
    assert sorted(os.listdir(tmp_path)) == ["fig.png", "summary.html", "summary.md"]


def test_write_report_writes_nothing_on_missing_image(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_report("![f](gone.png)\n", tmp_path)
    assert os.listdir(tmp_path) == []


def test_md_table_formatting():
    table = md_table(
        ["method", "acc", "n"],
        [["tell", 0.81234, 3], ["sft", math.nan, 1], ["a|b", None, 2]],
    )
    assert table == (
        "| method | acc | n |\n"
        "|---|---:|---:|\n"
        "| tell | 0.812 | 3 |\n"
        "| sft | – | 1 |\n"
        "| a\\|b | – | 2 |\n"
    )
    assert "<table>" in markdown_to_html(table, ".", title="t")


def test_md_table_custom_format_and_numpy():
    np = pytest.importorskip("numpy")
    table = md_table(["x"], [[np.float32(0.5)], [np.int64(7)], [True]], floatfmt="{:.1%}")
    assert table.splitlines()[1] == "|---|"  # bool makes the column non-numeric
    assert table.splitlines()[2:] == ["| 50.0% |", "| 7 |", "| True |"]


def test_md_table_row_length_checked():
    with pytest.raises(ValueError, match="row 0"):
        md_table(["a", "b"], [[1]])
