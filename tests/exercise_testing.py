"""What the exercise-checker tests (tests/test_exercises*.py) share."""

from lib import exercises


def verdict(label, capsys, **answer):
    """Run the check of ``label`` on ``answer``; it prints exactly its verdict, returned."""
    v = exercises.check(label, **answer)
    printed = capsys.readouterr().out
    assert printed.strip() == str(v), "check() prints exactly its verdict"
    return v
