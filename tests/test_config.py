import pytest

from r2r_local.config import ConfigError, config_path, load_user_config, write_user_config


def test_round_trip_in_the_user_config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("R2R_CONFIG_DIR", str(tmp_path / "cfg"))
    assert load_user_config() == {}
    values = {"small": "/m/small.gguf", "large": 'C:\\models\\"big".gguf', "router": "entropy:1.5",
              "n_ctx": 8192, "large_gpu_layers": -1}
    path, backup = write_user_config(values)
    assert backup is None
    assert path == config_path() == tmp_path / "cfg" / "config.toml"
    assert load_user_config() == values


@pytest.mark.parametrize("text,fragment", [
    ("[models]\nsmall = 3\n", "models.small must be a string, got an integer"),
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


@pytest.mark.parametrize("text,fragment", [
    ("[models]\nn_ctx = 5\n", "models.n_ctx must be between 256 and 1048576"),
    ("[models]\nn_ctx = 4294967312\n", "models.n_ctx must be between 256 and 1048576"),
    ("[models]\nn_ctx = 1000\n", "models.n_ctx must be a multiple of 256"),
    ("[models]\nthreads = \"4\"\n", "models.threads must be an integer, got a string"),
    ("[models]\nthreads = 0\n", "models.threads must be between 1 and 1024"),
    ("[models]\nthreads = 100000\n", "models.threads must be between 1 and 1024"),
    ("[models]\nsmall_gpu_layers = -7\n", "models.small_gpu_layers must be >= -1"),
    ("[models]\nrouter = \"random:abc\"\n", "'abc' is not a number"),
    ("[models]\nrouter = \"\"\n", "the router spec is empty"),
    ("[models]\nsmall = \" \"\n", "models.small is empty"),
])
def test_config_values_are_range_checked_naming_the_file(tmp_path, text, fragment):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment) as err:
        load_user_config(path)
    assert str(path) in str(err.value)


USER_FILE = """\
# my settings, by hand
[models]
small = "/old/small.gguf"
router = "entropy:0.5"   # a pair-agnostic router
threads = 2

[other]
x = 1  # keep me
list = [1, 2]
"""


def test_writing_keeps_other_tables_keys_and_comments(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(USER_FILE)
    _, backup = write_user_config({"small": "/new/small.gguf", "large": "/new/large.gguf", "n_ctx": 2048}, path)
    text = path.read_text()
    assert backup is None  # only uncommented lines changed: nothing is lost
    assert text == USER_FILE.replace("/old/", "/new/").replace(
        "threads = 2\n", 'threads = 2\nlarge = "/new/large.gguf"\nn_ctx = 2048\n')
    import tomllib

    doc = tomllib.loads(text)
    assert doc["models"] == {"small": "/new/small.gguf", "router": "entropy:0.5", "threads": 2,
                             "large": "/new/large.gguf", "n_ctx": 2048}
    assert doc["other"] == {"x": 1, "list": [1, 2]}


def test_a_changed_line_with_a_comment_leaves_a_backup(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(USER_FILE)
    _, backup = write_user_config({"router": "slm"}, path)
    assert backup == tmp_path / "config.toml.bak" and backup.read_text() == USER_FILE
    assert "router = \"slm\"" in path.read_text() and "x = 1  # keep me" in path.read_text()


@pytest.mark.parametrize("text", [
    'models.small = "/old.gguf"\nmodels.threads = 3\n[other]\nx = 1\n',  # dotted keys
    'models = { small = "/old.gguf", threads = 3 }\n',  # an inline table
    '[models]\nsmall = """\n/old.gguf"""\nthreads = 3\n',  # a multi-line string
])
def test_files_that_need_a_rewrite_keep_every_value_and_a_backup(tmp_path, text):
    import tomllib

    path = tmp_path / "config.toml"
    path.write_text(text)
    _, backup = write_user_config({"small": "/new.gguf"}, path)
    assert backup is not None and backup.read_text() == text
    doc, old = tomllib.loads(path.read_text()), tomllib.loads(text)
    old["models"]["small"] = "/new.gguf"
    assert doc == old


def test_dropping_a_key(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[models]\nrouter = "r.onnx"\nthreads = 2\n')
    _, backup = write_user_config({"small": "/s.gguf"}, path, drop=("router",))
    assert load_user_config(path) == {"threads": 2, "small": "/s.gguf"}
    assert backup is None  # only the value is gone, and the caller names it (models add prints it)


def test_dropping_a_key_with_a_comment_leaves_a_backup(tmp_path):
    path = tmp_path / "config.toml"
    text = '[models]\nrouter = "r.onnx"  # trained on my data\nthreads = 2\n'
    path.write_text(text)
    _, backup = write_user_config({"small": "/s.gguf"}, path, drop=("router",))
    assert backup == tmp_path / "config.toml.bak" and backup.read_text() == text


TWO_COMMENTS = '[models]\nsmall = "/a.gguf"  # first\nrouter = "entropy:0.5"  # second\n'


def test_lossy_edits_in_a_row_never_overwrite_a_backup(tmp_path):
    path = tmp_path / "config.toml"
    path.write_bytes(TWO_COMMENTS.replace("\n", "\r\n").encode())
    _, first = write_user_config({"small": "/b.gguf"}, path)
    after_first = path.read_bytes()
    _, second = write_user_config({"router": "slm"}, path)
    assert first == tmp_path / "config.toml.bak" and second == tmp_path / "config.toml.bak.1"
    assert first.read_bytes() == TWO_COMMENTS.replace("\n", "\r\n").encode()  # the original, byte for byte
    assert second.read_bytes() == after_first and b"# second" in after_first and b"# first" not in after_first
    assert load_user_config(path) == {"small": "/b.gguf", "router": "slm"}


def test_a_backup_identical_to_the_file_is_reused(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(TWO_COMMENTS)
    (tmp_path / "config.toml.bak").write_text("# something else\n")
    _, first = write_user_config({"small": "/b.gguf"}, path)
    path.write_text(TWO_COMMENTS)
    _, again = write_user_config({"small": "/c.gguf"}, path)
    assert first == again == tmp_path / "config.toml.bak.1" and first.read_text() == TWO_COMMENTS
    assert (tmp_path / "config.toml.bak").read_text() == "# something else\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "config.toml.bak", "config.toml.bak.1"]


def test_the_backup_and_the_new_file_keep_the_config_files_mode(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(TWO_COMMENTS)
    path.chmod(0o600)
    _, backup = write_user_config({"small": "/b.gguf"}, path)
    assert backup is not None
    assert backup.stat().st_mode & 0o777 == 0o600 and path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_write_leaves_the_config_file_and_no_temp_files(tmp_path, monkeypatch, error):
    path = tmp_path / "config.toml"
    path.write_text(USER_FILE)

    def fail(src, dst):
        raise error

    monkeypatch.setattr("os.replace", fail)
    with pytest.raises(ConfigError if isinstance(error, OSError) else KeyboardInterrupt) as err:
        write_user_config({"small": "/new.gguf"}, path)
    assert isinstance(error, KeyboardInterrupt) or "No space left on device" in str(err.value)
    assert path.read_text() == USER_FILE and [p.name for p in tmp_path.iterdir()] == ["config.toml"]


def test_new_keys_go_before_the_comment_of_the_next_table():
    from r2r_local.toml_edit import edit_table

    text = '[models]\nsmall = "a"\n\n# notes for foo\n[foo]\nx = 1\n'
    new, lossless = edit_table(text, "models", {"n_ctx": 8192})
    assert new == '[models]\nsmall = "a"\nn_ctx = 8192\n\n# notes for foo\n[foo]\nx = 1\n' and lossless
    inside = '[models]\n# the pair\nsmall = "a"  # mine\n# threads = 4\n'
    assert edit_table(inside, "models", {"n_ctx": 1})[0] == '[models]\n# the pair\nsmall = "a"  # mine\nn_ctx = 1\n# threads = 4\n'


def test_dumps_round_trips_toml_values():
    import datetime as dt
    import tomllib

    from r2r_local.toml_edit import dumps

    doc = {"a": 1, "b": 1.5, "c": "x\"y\\z\n\u00e9\U0001f600", "d": [1, "two", [3]], "e": True,
           "t": {"u": {"v": 2}, "w": [{"x": 1}]}, "when": dt.datetime(2024, 1, 2, 3, 4, 5),
           "weird key": float("inf")}
    assert tomllib.loads(dumps(doc)) == doc
