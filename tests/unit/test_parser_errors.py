"""jsonargparse's multi-line type errors become one `error:` line that names the option and, for a choice, the
choices (textcls.help.one_line_parser_error, installed on the CLI's parsers)."""

from __future__ import annotations

import pytest

from textcls.cli import main
from textcls.help import one_line_parser_error

NESTED = (
    'Parser key "model.model":\n  Problem with given class_path \'textcls.models.MLP\':\n    Parser key "activation":\n'
    "      Expected a typing.Literal['relu', 'gelu', 'tanh']. Got value: bogus"
)


def test_a_bad_choice_of_a_class_argument_names_its_full_option_and_the_choices() -> None:
    assert one_line_parser_error(NESTED) == (
        "--model.model.init_args.activation bogus is invalid: expected one of relu, gelu, tanh."
    )


def test_a_bad_choice_of_a_plain_option() -> None:
    message = "Parser key \"data.format\":\n  Expected a typing.Literal['csv', 'tsv']. Given value: xlsx"
    assert one_line_parser_error(message) == "--data.format xlsx is invalid: expected one of csv, tsv."


def test_other_type_errors_are_joined_into_one_line() -> None:
    message = "Parser key \"trainer.max_epochs\":\n  Expected a <class 'int'>\n  Given value: abc"
    folded = one_line_parser_error(message)
    assert "\n" not in folded
    assert folded.startswith('Parser key "trainer.max_epochs": Expected')


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--model.model.init_args.activation", "bogus", "--model.model.init_args.activation bogus is invalid"),
        ("--data.format", "xlsx", "--data.format xlsx is invalid: expected one of csv,"),
    ],
)
def test_the_command_prints_one_error_line(capsys, monkeypatch, tmp_path, option, value, expected) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--model.model", "MLP", option, value])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], errors
    assert not list(tmp_path.iterdir())  # nothing written
