from uvigu.studio import word_diff


def test_word_diff_marks_replaced_added_and_removed_words():
    spans = word_diff("a red circle moves to the right", "a green circle moves quickly to the right")
    assert spans == [
        ("a", None), ("red", "-"), ("green", "+"), ("circle moves", None), ("quickly", "+"),
        ("to the right", None),
    ]


def test_word_diff_of_equal_texts_has_no_changes():
    assert word_diff("a b", "a  b") == [("a b", None)]
