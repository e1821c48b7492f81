from newsdesk.data.recent_keys import RecentKeys


def test_bounded_by_count_and_by_age() -> None:
    clock = [0.0]
    keys = RecentKeys(3, max_age_s=10.0, clock=lambda: clock[0])
    for i in range(5):
        keys.add(f"k{i}", i)
    assert len(keys) == 3 and "k1" not in keys and keys.get("k4") == 4
    clock[0] = 8.0
    keys.add("late", "v")
    clock[0] = 15.0  # k2..k4 (t=0) are older than 10 s; "late" (t=8) is not
    keys.add("new")
    assert len(keys) == 2 and "late" in keys and keys.get("k4") is None
    keys.add("late", "again")  # re-adding refreshes its age
    clock[0] = 24.0
    keys.add("x")
    assert "late" in keys and "new" in keys and keys.get("late") == "again"


def test_without_age_only_the_count_bounds() -> None:
    keys = RecentKeys(2)
    keys.add("a")
    keys.add("b")
    keys.add("a")  # refreshed: b is now the oldest
    keys.add("c")
    assert "a" in keys and "b" not in keys and "c" in keys
