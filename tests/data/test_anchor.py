import pytest

from tellkit.config.schema import AnchorConfig
from tellkit.data.anchor import anchor_text, apply_anchor
from tellkit.errors import ConfigError

MSGS = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]


def test_prefix_and_system_positions():
    assert apply_anchor(MSGS, "ANC")[0]["content"] == "ANC\n\nQ"
    sys_ = apply_anchor(MSGS, "ANC", position="system")
    assert sys_[0] == {"role": "system", "content": "ANC"} and sys_[1]["content"] == "Q"
    assert MSGS[0]["content"] == "Q"  # input untouched
    assert apply_anchor(MSGS, None) == MSGS


def test_anchor_from_file_and_empty(tmp_path):
    (tmp_path / "a.txt").write_text("  from file \n")
    assert anchor_text(AnchorConfig(file=str(tmp_path / "a.txt"))) == "from file"
    with pytest.raises(ConfigError, match="anchor is empty"):
        anchor_text(AnchorConfig(text="   "))
    with pytest.raises(ConfigError, match="not found"):
        anchor_text(AnchorConfig(file=str(tmp_path / "none.txt")))
