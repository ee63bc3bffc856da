import pytest

from facedancer.config import apply_overrides, from_dict
from facedancer.errors import ConfigError
from facedancer.nn import Discriminator, Generator, parameter_count
from facedancer.presets import Preset, list_presets, load_preset

DESIGN_PRESETS = {"baseline-concat", "baseline-add", "affa-top3", "facedancer", "facedancer-no-ifsr", "facedancer-lite"}


def test_design_presets_exist_and_build():
    assert set(list_presets()) >= DESIGN_PRESETS
    for name in list_presets():
        p = load_preset(name)
        assert p.name == name and p.description
        assert Generator(p.generator).config.image_size == p.discriminator.image_size


def test_facedancer_preset_is_the_papers():
    p = load_preset("facedancer")
    assert p.identity.encoder.startswith("arcface") and p.generator.identity_dim == 512
    assert p.generator.mapping_width == 512 and p.generator.mapping_depth == 4
    assert p.generator.stage_fusions == ("none", "none", "affa", "affa", "affa", "concat")
    assert p.ifsr.enabled and p.ifsr.scale == 1.2 and p.ifsr.reduction == "batch"
    assert parameter_count(Generator(p.generator)) == 24_505_894
    assert parameter_count(Discriminator(p.discriminator)) == 23_972_353
    assert not load_preset("facedancer-no-ifsr").ifsr.enabled


def test_official_preset_is_the_papers_model_on_the_keras_arcface():
    p, paper = load_preset("facedancer-official"), load_preset("facedancer")
    assert p.generator == paper.generator and p.discriminator == paper.discriminator
    assert p.identity.encoder == "arcface-keras-r50"
    assert p.ifsr.enabled and p.ifsr.scale == 1.2 and p.ifsr.margins == "ifsr_margins_arcface_keras"


def test_ablation_layouts():
    top3 = ("none", "none", "none")
    assert load_preset("baseline-concat").generator.stage_fusions == (*top3, "concat", "concat", "concat")
    assert load_preset("baseline-add").generator.stage_fusions == (*top3, "add", "add", "add")
    assert load_preset("affa-top3").generator.stage_fusions == (*top3, "affa", "affa", "affa")


def test_unknown_keys_are_errors_with_suggestions(tmp_path):
    message = r"unknown config key 'generator.mapping_widht' \(did you mean 'mapping_width'"
    with pytest.raises(ConfigError, match=message):
        from_dict(Preset, {"generator": {"mapping_widht": 3}})
    path = tmp_path / "p.yaml"
    path.write_text("generatr: {}\n")
    with pytest.raises(ConfigError, match="did you mean 'generator'"):
        load_preset(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"generator": {"image_size": "big"}}, "generator.image_size: expected int"),
        ({"ifsr": {"reduction": "median"}}, "not one of"),
        ({"identity": {"encoder": "facenet"}}, "unknown identity encoder"),
        ({"identity": {"encoder": "sface"}}, "identity_dim is 512 but sface embeddings have 128"),
        ({"generator": {"fusion": {32: "gate"}}}, "unknown fusion"),
    ],
)
def test_invalid_values(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Preset, data)


def test_overrides_parse_yaml_values():
    data = apply_overrides({"generator": {"mapping_width": 512}}, ["generator.mapping_width=256", "ifsr.enabled=false"])
    p = from_dict(Preset, data)
    assert p.generator.mapping_width == 256 and p.ifsr.enabled is False
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["novalue"])


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="presets: .*facedancer"):
        load_preset("facedancer-xl")
