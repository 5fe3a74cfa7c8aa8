"""The pool's novelty-filter encoding kept between rounds: equal to a fresh encoding, a cache."""

from __future__ import annotations

from sipipeline.defs.novelty_index import INDEX_DIR, KEEP, keep_next_encoding, pool_encoding
from sipipeline.defs.storage import VERSION_ATTR, RoundStore
from sipipeline.method.schema import pool_frame
from sipipeline.similarity import encode_pool


def _pool(texts: list[str], version: str | None) -> object:
    pool = pool_frame([{"task_id": f"t{i}", "instruction": text, "origin": "seed", "round": 0,
                        "is_classification": False, "instances": []}
                       for i, text in enumerate(texts)])
    pool.attrs = {VERSION_ATTR: version} if version else {}
    return pool


def _codes(encoded) -> list[int]:
    return encoded.codes.tolist()


def test_rounds_keep_the_encoding_of_the_pool_they_hand_on(tmp_path):
    store = RoundStore(base_path=str(tmp_path / "store"))
    seed = _pool(["Write a poem about the sea.", "List three fruits."], "aaaa0001")
    first = pool_encoding(store, seed)
    assert (store.local_dir(INDEX_DIR) / "aaaa0001.npz").is_file()
    assert _codes(pool_encoding(store, seed)) == _codes(first)  # loaded, the same
    texts = ["Write a poem about the sea.", "List three fruits.", "Name a red fruit sea poem."]
    keep_next_encoding(store, seed, _pool(texts, None), "bbbb0002")
    kept = pool_encoding(store, _pool(texts, "bbbb0002"))
    assert _codes(kept) == _codes(encode_pool(texts)) and kept.lengths == [6, 3, 6]


def test_a_damaged_or_mismatched_encoding_is_rebuilt_and_old_ones_are_pruned(tmp_path):
    store = RoundStore(base_path=str(tmp_path / "store"))
    folder = store.local_dir(INDEX_DIR)
    (folder / "cccc0003.npz").write_bytes(b"not a zip")
    pool = _pool(["Translate the sentence into French."], "cccc0003")
    assert _codes(pool_encoding(store, pool)) == _codes(encode_pool(pool["instruction"]))
    # An encoding of another size under this version (a different pool) is not used.
    bigger = _pool(["Translate the sentence into French.", "Sort the list."], "cccc0003")
    assert len(pool_encoding(store, bigger)) == 2
    for number in range(5):
        pool_encoding(store, _pool([f"Task number {number}."], f"dddd000{number}"))
    assert len(list(folder.glob("*.npz"))) == KEEP
    # Frames without a stored version (e.g. a judge-filtered pool) are encoded, never kept.
    pool_encoding(store, _pool(["Unversioned task."], None))
    assert len(list(folder.glob("*.npz"))) == KEEP
