"""Pipeline configs: defaults, overrides, and one-line errors naming the key."""
import pytest

from gan_tpu import config
from gan_tpu.errors import UserError


def _write(tmp_path, text):
    path = tmp_path / "p.toml"
    path.write_text(text)
    return path


def test_shipped_pipelines_load_by_name_and_path():
    demo = config.load("demo")
    assert demo["model"]["name"] == "cyclegan" and demo["data"]["image_size"] == 64
    assert demo["train"]["jit_compile"] == "auto" and demo["runtime"]["device"] == "auto"
    full = config.load(config.PIPELINES_DIR / "cyclegan.toml")
    assert full["data"]["image_size"] == 256 and full["model"]["generator"] == "unet"


def test_defaults_fill_missing_keys_and_output_dir_follows_the_file_name(tmp_path):
    cfg = config.load(_write(tmp_path, "[model]\nname = 'cyclegan'\n"))
    assert cfg["train"]["batch_size"] == 1 and cfg["output"]["dir"].endswith("runs/p")
    assert cfg["data"]["monet"] == config.default_data_root()


def test_overrides_are_typed_as_toml():
    cfg = config.load("demo", ["train.epochs=7", "model.lr=0.001", "data.augment=false",
                               "output.dir=somewhere/else"])
    assert cfg["train"]["epochs"] == 7 and cfg["model"]["lr"] == 0.001
    assert cfg["data"]["augment"] is False and cfg["output"]["dir"] == "somewhere/else"


@pytest.mark.parametrize("text, message", [
    ("[train]\nbatch_sise = 2\n", "train.batch_sise: unknown key"),
    ("[train]\nbatch_size = 'two'\n", "train.batch_size: expected int, got str 'two'"),
    ("[train]\nbatch_size = 0\n", "train.batch_size: must be at least 1, got 0"),
    ("[data]\naugment = 1\n", "data.augment: expected bool, got int 1"),
    ("[trian]\nepochs = 1\n", "unknown section [trian]"),
    ("[model]\nname = 'cyclegan'\nngf = 'wide'\n", "model.ngf: expected int, got str 'wide'"),
    ("[model]\nname = 'cyclegan'\nlamda = 3\n", "model.lamda: not an option of model 'cyclegan'"),
    ("[model]\nname = 'nogan'\n", "model.name: unknown model 'nogan'"),
    ("[runtime]\ndevice = 'quantum'\n", "runtime.device: 'quantum' is not one of auto, tpu, gpu, cpu"),
    ("[train]\njit_compile = 'sometimes'\n", "train.jit_compile: expected true, false or \"auto\""),
    ("[train]\nepochs = 'often'\n", "train.epochs: expected a whole number or \"auto\", got 'often'"),
    ("[train]\nepochs = 0\n", "train.epochs: must be at least 1, got 0"),
    ("[eval]\nevery = -1\n", "eval.every: must be 0 (off) or a number of epochs"),
    ("[eval]\nphotos = 0\n", "eval.photos: must be at least 1, got 0"),
    ("[train\n", "not valid TOML"),
])
def test_bad_configs_name_the_key(tmp_path, text, message):
    with pytest.raises(UserError) as err:
        config.load(_write(tmp_path, text))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_override_and_missing_file(tmp_path):
    with pytest.raises(UserError, match="expected section.key=value"):
        config.load("demo", ["epochs=3"])
    with pytest.raises(UserError, match="no such pipeline file"):
        config.load(tmp_path / "missing.toml")


def test_saved_config_loads_back_identically(tmp_path):
    cfg = config.load("demo", ['data.monet="a b/c"', "budget.hours=0.5", 'train.epochs="auto"', "eval.every=2"])
    config.save(cfg, tmp_path / "config.toml")
    assert config.load(tmp_path / "config.toml") == cfg
