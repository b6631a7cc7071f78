import pytest
from django.db import connection
from django.urls import reverse

# The view's own database connection is what it reports on: no test transaction.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def database_away(monkeypatch):
    """The database as the web process sees it once it stops answering."""
    connection.close()
    if connection.vendor == "sqlite":
        monkeypatch.setitem(connection.settings_dict, "NAME", "/nonexistent/db.sqlite3")
    else:
        monkeypatch.setitem(connection.settings_dict, "HOST", "127.0.0.1")
        monkeypatch.setitem(connection.settings_dict, "PORT", "1")  # nothing listens
    yield
    connection.close()


def test_healthy_while_the_database_answers(client):
    response = client.get(reverse("health"))
    assert (response.status_code, response.content) == (200, b"ok\n")


def test_unavailable_while_the_database_does_not_answer(client, database_away, caplog):
    response = client.get(reverse("health"))
    assert (response.status_code, response.content) == (503, b"unavailable\n")
    assert "the database does not answer" in caplog.text
