"""Identity encoders: an aligned face crop in, an embedding out, plus named intermediate features."""

#: embedding size of every encoder a preset may name
EMBEDDING_DIMS: dict[str, int] = {"sface": 128, "arcface-iresnet50": 512, "arcface-iresnet100": 512}
