from __future__ import annotations

import pytest
from PIL import Image

from tasks.data.lst_validation import LstValidationError, validate_lst


@pytest.fixture
def root(tmp_path):
    images = tmp_path / "images"
    (images / "a").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (8, 8)).save(images / "a" / f"{i}.jpg")
    (images / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    return images


def write(tmp_path, text: str | bytes):
    path = tmp_path / "train.lst"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_a_valid_list_returns_its_entries(tmp_path, root):
    lst = write(tmp_path, "0\t0.000000\ta/0.jpg\n1\t1.000000\ta/1.jpg\n")
    entries = validate_lst(lst, num_classes=2, image_root=root, check_images=True)
    assert [(e.index, e.line) for e in entries] == [(0, 1), (1, 2)]


def test_every_problem_is_reported_with_its_line(tmp_path, root):
    lst = write(
        tmp_path,
        "\n".join(
            [
                "0\t0.0\ta/0.jpg",
                "0\t1.0\ta/1.jpg",  # duplicate index
                "2\t7.0\ta/2.jpg",  # label out of range
                "3\t1.5\ta/2.jpg",  # not a class index
                "x\t1.0\ta/2.jpg",  # bad index
                "5\ta/2.jpg",  # too few columns
                "6\t1.0\t/etc/passwd",  # absolute path
                "7\t1.0\t../outside.jpg",  # escapes the root
                "8\t1.0\ta/missing.jpg",  # missing file
                "9\t1.0\ta/broken.jpg",  # does not decode
                "10\t1.0\t0.0\ta/0.jpg",  # column count differs
            ]
        )
        + "\n",
    )
    with pytest.raises(LstValidationError) as info:
        validate_lst(lst, num_classes=3, image_root=root, check_images=True)
    message = str(info.value)
    assert message.startswith(f"{lst}: 10 problems:")
    for expected in [
        "line 2: index 0 already used on line 1",
        "line 3: label 7 is not a class index; allowed: 0..2",
        "line 4: label 1.5 is not a class index",
        "line 5: index must be an integer, got 'x'",
        "line 6: expected index, label(s) and path separated by tabs, got 2",
        "line 7: path '/etc/passwd' must be relative",
        "line 8: path '../outside.jpg' must be relative",
        "line 9: image",
        "missing.jpg not found",
        "line 10: image",
        "broken.jpg does not decode",
        "line 11: 4 columns, but earlier lines have 3",
    ]:
        assert expected in message, expected


def test_only_the_first_twenty_are_shown_with_a_count(tmp_path):
    lst = write(tmp_path, "".join(f"{i}\tcat\tx.jpg\n" for i in range(30)))
    with pytest.raises(LstValidationError, match=r"30 problems:(.|\n)*line 20:(.|\n)*and 10 more"):
        validate_lst(lst)


def test_non_utf8_line_and_missing_classes(tmp_path):
    lst = write(tmp_path, b"0\t0.0\ta.jpg\n1\t3.0\t\xff\xfe.jpg\n2\t3.0\tb.jpg\n")
    with pytest.raises(LstValidationError) as info:
        validate_lst(lst)
    assert "line 2: not UTF-8" in str(info.value)
    assert "classes must be consecutive from 0; no line has label 1, 2" in str(info.value)


def test_a_split_may_lack_classes_when_their_number_is_known(tmp_path):
    """A small validation split of a 4-class dataset often has no image of some class: with
    num_classes given (as the pack step gives it) that is no gap in the labels."""
    lst = write(tmp_path, "0\t1.0\ta.jpg\n1\t3.0\tb.jpg\n")
    assert [e.labels for e in validate_lst(lst, num_classes=4)] == [(1.0,), (3.0,)]
    with pytest.raises(LstValidationError, match="no line has label 0, 2"):
        validate_lst(lst)


def test_empty_list(tmp_path):
    with pytest.raises(LstValidationError, match="the list is empty"):
        validate_lst(write(tmp_path, "\n"))


@pytest.mark.parametrize("label", ["inf", "-inf", "nan", "1e39", "3.40283e38"])
def test_a_label_no_32_bit_float_holds_is_refused_with_its_line(tmp_path, label):
    # RecordIO stores labels as 32-bit floats: these once left the packer with a traceback.
    lst = write(tmp_path, f"0\t0\ta/0.jpg\n1\t{label}\t2\ta/1.jpg\n")
    with pytest.raises(LstValidationError) as info:
        validate_lst(lst)
    assert "line 2: labels must be finite numbers that a 32-bit float holds" in str(info.value)
    assert repr(label) in str(info.value)


def test_the_largest_32_bit_float_is_a_label_a_list_may_carry(tmp_path):
    lst = write(tmp_path, "0\t3.4028234e38\t1\ta/0.jpg\n")
    (entry,) = validate_lst(lst)
    assert entry.labels == (3.4028234e38, 1.0)
