import pytest

from r2r_local.config import ConfigError, config_path, load_user_config, write_user_config


def test_round_trip_in_the_user_config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("R2R_CONFIG_DIR", str(tmp_path / "cfg"))
    assert load_user_config() == {}
    values = {"small": "/m/small.gguf", "large": 'C:\\models\\"big".gguf', "router": "entropy:1.5",
              "n_ctx": 8192, "large_gpu_layers": -1}
    path = write_user_config(values)
    assert path == config_path() == tmp_path / "cfg" / "config.toml"
    assert load_user_config() == values


@pytest.mark.parametrize("text,fragment", [
    ("[models]\nsmall = 3\n", "models.small must be a str"),
    ("[models]\ncolour = 'red'\n", "unknown key models.colour"),
    ("[models\n", "config file"),
    ("models = 1\n", "must be a table"),
])
def test_bad_config_files_name_the_file(tmp_path, text, fragment):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment) as err:
        load_user_config(path)
    assert str(path) in str(err.value)
