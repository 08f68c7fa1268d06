from responsestore import BaseStore, ResponseStatus


def test_create_get_complete_roundtrip(store: BaseStore) -> None:
    record = store.create("m", "hi")
    assert store.get(record.id) == record
    done = store.complete(record.id, [{"role": "assistant", "content": "hello"}])
    assert done.status is ResponseStatus.COMPLETED
    assert done.version == 2
