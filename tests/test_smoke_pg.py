from decimal import Decimal

from ledger_service.audit.verify import verify
from ledger_service.rules.events import BuyPack, Deposit, OpenStore, Order, Register

from conftest import START


def test_engine_books_and_verifies_on_each_database(make_books, db_url):
    engine = make_books(db_url=db_url)
    engine.submit(Register("m1"), START)
    engine.submit(BuyPack("m1", "activation"), START)
    engine.submit(OpenStore("s1", "m1", "441900", "offline", Decimal("0.10")), START)
    engine.submit(Deposit(Decimal("500.00"), merchant="s1"), START)
    engine.submit(Order("o1", "m1", "s1", Decimal("1000.00")), START)
    engine.close_days(START)
    report = verify(engine.books.root, db_url)
    assert report.ok, report.faults
    assert report.db_checked
    assert engine.holder("m1")["sv_active"] > 0
