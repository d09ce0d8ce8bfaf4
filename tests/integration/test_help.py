"""`textcls --help` and `textcls fit --help` are short enough to read, and name what a user can pick."""

from __future__ import annotations

import pytest

from textcls.cli import main


def help_text(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_fit_help_fits_on_a_few_screens_and_lists_the_networks(capsys):
    text = help_text(capsys, "fit", "--help")
    assert len(text.splitlines()) < 600  # 1,375 lines before, 446 of them every torch.nn module
    assert "torch.nn.Module," not in text and "MultiheadAttention" not in text
    network = text[text.index("--model.model MODEL") :][:600]
    assert "MLP, TextCNN" in " ".join(network.split())
    assert text.splitlines()[0].endswith("fit [-h] [-c CONFIG] [--print_config] [--OPTION VALUE ...]")


def test_a_networks_options_are_reachable_by_its_short_name(capsys):
    text = help_text(capsys, "fit", "--model.model.help", "TextCNN")
    assert "--model.model.kernel_sizes" in text and "--model.model.num_filters" in text
    assert "--model.model.hidden_dims" in help_text(capsys, "fit", "--model.model.help", "MLP")


def test_top_level_help_names_every_subcommand(capsys):
    text = " ".join(help_text(capsys, "--help").split())
    for name in ("fit", "validate", "test", "predict", "textcls export", "textcls serve"):
        assert name in text
