"""Where the tests' files are, wherever a test module sits in tests/."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent
TEST_DATA = TESTS / "data"
REPO = TESTS.parent
