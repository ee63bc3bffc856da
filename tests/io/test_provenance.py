import numpy as np
import pytest

from facedancer import __version__
from facedancer.errors import InputError
from facedancer.io import TRAINED_ALGORITHMIC_MEDIA, ProvenanceLabel, read_label, write_image

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRICKY = ProvenanceLabel(model='runs/my "best". <model> & co', note="made for a test.\nSecond line.")


def test_default_label_names_facedancer_model_and_iptc_term():
    label = ProvenanceLabel(model="facedancer-lite")
    assert label.tool == "facedancer" and label.version == __version__
    assert label.source_type == TRAINED_ALGORITHMIC_MEDIA == IPTC + "trainedAlgorithmicMedia"
    assert "facedancer" in label.text and "facedancer-lite" in label.text and TRAINED_ALGORITHMIC_MEDIA in label.text


@pytest.mark.parametrize("label", [ProvenanceLabel(model="m"), TRICKY])
def test_text_xmp_and_tags_round_trip(label):
    assert ProvenanceLabel.from_text(label.text) == label
    assert ProvenanceLabel.from_xmp(label.xmp()) == label
    assert ProvenanceLabel.from_tags({k.upper(): v for k, v in label.tags().items()}) == label  # Matroska case


def test_xmp_packet_carries_iptc_digital_source_type():
    import xml.etree.ElementTree as ET

    root = ET.fromstring(ProvenanceLabel(model="m").xmp())
    values = [e.text for e in root.iter("{http://iptc.org/std/Iptc4xmpExt/2008-02-29/}DigitalSourceType")]
    assert values == [TRAINED_ALGORITHMIC_MEDIA]


def test_other_tools_labels_are_recognised_and_real_photos_are_not():
    foreign = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="OtherGen 2" '
        'Iptc4xmpExt:DigitalSourceType="{}"/></rdf:RDF></x:xmpmeta>'
    )
    label = ProvenanceLabel.from_xmp(foreign.format(IPTC + "compositeWithTrainedAlgorithmicMedia"))
    assert label is not None and label.tool == "OtherGen 2" and label.model == "unknown"
    assert ProvenanceLabel.from_xmp(foreign.format(IPTC + "digitalCapture")) is None
    assert ProvenanceLabel.from_xmp(b"<not xml") is None
    assert ProvenanceLabel.from_text("a holiday photo") is None
    assert ProvenanceLabel.from_tags({"comment": "a holiday video", "encoder": "Lavf"}) is None


def test_read_label_on_unlabelled_real_media_and_bad_files(lfw, shared, tmp_path):
    assert read_label(lfw / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg") is None
    assert read_label(shared / "data/videos/liveportrait/d18.mp4") is None
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("hello")
    for bad in (tmp_path / "empty.png", tmp_path / "text.mp4", tmp_path / "missing.webp"):
        with pytest.raises(InputError, match="cannot read"):
            read_label(bad)


def test_label_survives_every_image_format(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    for suffix in (".png", ".jpg", ".webp"):
        assert read_label(write_image(tmp_path / f"x{suffix}", rgb, TRICKY)) == TRICKY


@pytest.mark.parametrize("name", ["notes.jpg", "notes.png", "notes.webp", "notes.gif", "notes.mp4", "notes.avi"])
def test_a_text_file_with_a_media_name_is_unreadable_not_unlabelled(tmp_path, name):
    """Defect 7: text renamed .jpg was "not labelled" (FFmpeg opened it as a JPEG sequence); it cannot be read."""
    path = tmp_path / name
    path.write_text("just some text\nover two lines\n")
    with pytest.raises(InputError, match="cannot read"):
        read_label(path)


@pytest.mark.parametrize("term", ["compositeWithTrainedAlgorithmicMedia", "compositeSynthetic"])
def test_composite_terms_round_trip_with_a_sentence_that_fits_them(term):
    label = ProvenanceLabel(model="m", source_type=IPTC + term)
    assert ProvenanceLabel.from_text(label.text) == label
    assert ProvenanceLabel.from_xmp(label.xmp()) == label
    assert ("made by AI" in label.text) == ("Trained" in term)
