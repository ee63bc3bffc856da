import numpy as np

from facedancer.io import ProvenanceLabel, write_image


def test_inspect_exit_codes(cli, lfw, tmp_path):
    out = write_image(tmp_path / "swap.jpg", np.zeros((8, 8, 3), np.uint8), ProvenanceLabel(model="facedancer-lite"))
    labelled = cli("inspect", out)
    assert labelled.returncode == 0, labelled.stderr
    assert "labelled as synthetic media" in labelled.stdout and "model: facedancer-lite" in labelled.stdout
    assert "trainedAlgorithmicMedia" in labelled.stdout

    plain = cli("inspect", lfw / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg")
    assert plain.returncode == 1 and "not labelled" in plain.stdout

    (tmp_path / "notes.mp4").write_text("not media")
    bad = cli("inspect", tmp_path / "notes.mp4")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "Traceback" not in bad.stderr


def test_inspect_explains_each_swap_term(run, tmp_path):
    from facedancer.io.provenance import COMPOSITE_SYNTHETIC, COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA

    rgb = np.zeros((8, 8, 3), np.uint8)
    for term, says in ((COMPOSITE_SYNTHETIC, "no trained model"), (COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA, "AI")):
        path = write_image(tmp_path / "x.png", rgb, ProvenanceLabel(model="m", source_type=term))
        code, out, _ = run("inspect", path)
        assert code == 0 and term in out and says in out
