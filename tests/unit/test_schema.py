"""The committed schema.graphql is the schema the API serves; API.md's names are in it."""

from __future__ import annotations

from pathlib import Path

from strawberry.schema.name_converter import NameConverter

from api.schema import RememberedNames, build_schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_schema_graphql_matches_the_served_schema() -> None:
    served = build_schema().as_str() + "\n"
    assert SCHEMA_FILE.read_text() == served, (
        "schema.graphql drifted: run `sagaline schema > schema.graphql` and review the diff"
    )


def test_every_operation_of_the_contract_exists() -> None:
    sdl = build_schema().as_str()
    for name in (
        "registerUser(input: RegisterUserInput!)",
        "changeUserEmail(input: ChangeUserEmailInput!)",
        "authenticate(input: AuthenticateInput!)",
        "openAccount(input: OpenAccountInput!)",
        "depositMoney(input: DepositMoneyInput!)",
        "withdrawMoney(input: WithdrawMoneyInput!)",
        "transferMoney(input: TransferMoneyInput!)",
        "closeAccount(input: CloseAccountInput!)",
        "retrySaga(input: RetrySagaInput!)",
        "unlockUser(input: UnlockUserInput!)",
        "rebuildProjection(input: RebuildProjectionInput!)",
        "user(id: ID!",
        "userByEmail(email: String!",
        "users(",
        "account(id: ID!",
        "accounts(",
        "transfer(id: ID!",
        "transfers(",
        "saga(id: ID!",
        "events(streamId: ID!",
        "systemStatus(",
        "suspiciousActivities(",
        "transferUpdated(id: ID!)",
        "sagaUpdated(id: ID!)",
        "eventAppended(streamId: ID",
    ):
        assert name in sdl, name


def test_every_query_accepts_consistent_with() -> None:
    schema = build_schema()
    query_type = schema._schema.query_type
    assert query_type is not None
    missing = [
        name for name, field in query_type.fields.items() if "consistentWith" not in field.args
    ]
    assert missing == []


def test_names_are_converted_once_and_as_strawberry_converts_them() -> None:
    names = RememberedNames()
    plain = NameConverter()
    for name in ("consistent_with", "owner_id", "id", "a_b_c", "already"):
        assert names.apply_naming_config(name) == plain.apply_naming_config(name)
        assert names.apply_naming_config(name) == plain.apply_naming_config(name)
    names.auto_camel_case = False
    assert names.apply_naming_config("owner_id") == "owner_id"
