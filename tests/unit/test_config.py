"""Configs: bad input fails with the file, the line, the field and the fix."""

import textwrap

import pytest

from lifelong.config import ConfigError, load_config

GOOD = """\
name: tiny
stream: split_digits
training:
  epochs: 1
strategies:
  - name: naive
  - name: ewc
    params: {lambda: 5, mode: online}
"""


def write(tmp_path, text, name="config.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_good_config_resolves_the_shipped_stream_and_strategy_params(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    assert config.stream.name == "split_digits" and config.stream.n_tasks == 5
    assert [s.display_name for s in config.strategies] == ["naive", "ewc"]
    assert config.training.epochs == 1 and config.training.lr == 0.01


def test_overrides_reach_nested_fields_and_list_items(tmp_path):
    config = load_config(write(tmp_path, GOOD), ["training.lr=0.5", "strategies.1.params.lambda=7", "seeds=[1, 2]"])
    assert config.training.lr == 0.5 and config.strategies[1].params["lambda"] == 7 and config.seeds == [1, 2]


@pytest.mark.parametrize("edit, expected", [
    (("epochs: 1", "epochs: many"), r"config.yaml:4: field 'training.epochs': Input should be a valid integer"),
    (("epochs: 1", "epochs: 0"), r"config.yaml:4: field 'training.epochs': Input should be greater than or equal to 1"),
    (("epochs: 1", "epohcs: 1"), r"config.yaml:4: field 'training.epohcs': Extra inputs are not permitted"),
    (("name: naive", "name: naiv"), r"config.yaml:6: field 'strategies.0.name': unknown strategy 'naiv'. Did you mean naive"),
    (("mode: online", "mode: offline"), r"config.yaml:8: field 'strategies.1.params.mode' \(ewc\): Input should be 'separate' or 'online'"),
    (("stream: split_digits", "stream: split_digit"), r"no stream named 'split_digit'. Did you mean split_digits"),
])
def test_errors_name_file_line_field_and_fix(tmp_path, edit, expected):
    path = write(tmp_path, GOOD.replace(*edit))
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_stream_errors_point_into_the_stream_file(tmp_path):
    write(tmp_path, "name: s\nbuilder: split\nn_tasks: 5\nclasses_per_task: [2, 2]\n", "mystream.yaml")
    path = write(tmp_path, GOOD.replace("stream: split_digits", "stream: mystream.yaml"))
    with pytest.raises(ConfigError, match=r"mystream.yaml:1: .*classes_per_task \[2, 2\] must be .* list of 5 positive numbers"):
        load_config(path)


def test_inline_stream_and_unknown_builder(tmp_path):
    path = write(tmp_path, GOOD.replace("stream: split_digits", "stream: {name: x, builder: splt, n_tasks: 2}"))
    with pytest.raises(ConfigError, match=r"config.yaml:2: field 'stream': Input tag 'splt' found using 'builder' does not match.*'split'"):
        load_config(path)


def test_repeated_labels_and_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="distinct `label:`"):
        load_config(write(tmp_path, GOOD.replace("name: ewc", "name: naive").replace("params: {lambda: 5, mode: online}", "")))
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "name: [unclosed\n"))


def test_overriding_fields_of_a_shipped_stream_and_bad_override_paths(tmp_path):
    path = write(tmp_path, GOOD)
    config = load_config(path, ["stream=permuted_digits", "stream.n_tasks=2"])
    assert config.stream.builder == "permuted" and config.stream.n_tasks == 2
    with pytest.raises(ConfigError, match="override 'name.x=1': cannot set 'name.x'"):
        load_config(path, ["name.x=1"])
    with pytest.raises(ConfigError, match="list items take a number"):
        load_config(path, ["strategies.first.name=naive"])


def test_threads_setting_is_validated_and_applied(tmp_path):
    import torch

    from lifelong.run import prepare_runtime
    before = torch.get_num_threads()
    try:
        config = load_config(write(tmp_path, GOOD + "threads: 1\ndevice: cpu\n"))
        assert prepare_runtime(config) == torch.device("cpu") and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigError, match="field 'threads': Input should be greater than or equal to 1"):
        load_config(write(tmp_path, GOOD + "threads: 0\n"))


def test_labels_and_names_that_are_plain_file_names_pass(tmp_path):
    text = GOOD.replace("name: tiny", "name: Tiny run+v2=3@home").replace(
        "  - name: ewc\n", "  - name: ewc\n    label: ewc λ=5_online.v1\n")
    config = load_config(write(tmp_path, text))
    assert config.name == "Tiny run+v2=3@home" and config.strategies[1].display_name == "ewc λ=5_online.v1"


def test_aliases_within_the_bound_load_and_errors_still_find_their_line(tmp_path):
    text = GOOD.replace("training:\n  epochs: 1", "training: &budget\n  epochs: 1").replace(
        "  - name: naive\n", "  - name: naive\n    training: *budget\n")
    config = load_config(write(tmp_path, text))
    assert config.strategies[0].training.epochs == 1
    with pytest.raises(ConfigError, match=r"config.yaml:4: field 'training.epochs'"):
        load_config(write(tmp_path, text.replace("epochs: 1", "epochs: 0")))
