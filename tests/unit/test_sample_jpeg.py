"""data/images/test.jpg is what ops/make_sample_jpeg.py makes: regenerating it gives the committed bytes."""
from ops import make_sample_jpeg


def test_the_committed_test_jpg_is_the_generators_output():
    assert make_sample_jpeg.jpeg(make_sample_jpeg.draw()) == make_sample_jpeg.OUTPUT.read_bytes()
