"""Several tenants (issue 19), pure part: tagging, and one copy per owning tenant."""

from __future__ import annotations

from datetime import UTC, datetime

from services.domain.model import Configuration, Run
from services.domain.runs import expected_runs, with_configurations
from services.domain.tenants import TenantRead, delegated, one_per_owner, tag

A, B = "aaaaaaaa-0000-0000-0000-000000000000", "bbbbbbbb-0000-0000-0000-000000000000"


def config(sub: str, name: str, owner: str | None) -> Configuration:
    cid = (f"/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Maintenance/"
           f"maintenanceConfigurations/{name}")
    return Configuration(id=cid, name=name, resource_group="rg", subscription_id=sub,
                         tenant_id=owner)


def key(c: Configuration) -> str:
    return c.id.lower()


def test_a_delegated_subscription_appears_once_under_its_owner_whichever_comes_first() -> None:
    owned_by_b = config("sub-b", "web", B)
    # Profile "a" (tenant A) sees sub-b through Lighthouse; profile "b" owns it.
    for reads in ([TenantRead("a", A, [config("sub-a", "db", A), owned_by_b]),
                   TenantRead("b", B, [owned_by_b])],
                  [TenantRead("b", B, [owned_by_b]),
                   TenantRead("a", A, [config("sub-a", "db", A), owned_by_b])]):
        merged = {c.name: c for c in one_per_owner(reads, key)}
        assert len(merged) == 2
        assert (merged["web"].tenant, merged["web"].tenant_id) == ("b", B)
        assert (merged["db"].tenant, merged["db"].tenant_id) == ("a", A)


def test_a_delegated_subscription_whose_owner_is_not_read_stays_under_the_reader() -> None:
    (only,) = one_per_owner([TenantRead("a", A, [config("sub-b", "web", B)])], key)
    assert (only.tenant, only.tenant_id) == ("a", B) and delegated(only, A)


def test_a_row_without_tenant_id_gets_the_profiles_and_runs_follow_their_configuration() -> None:
    (c,) = tag([config("sub-a", "db", None)], "a", A)
    assert (c.tenant, c.tenant_id) == ("a", A) and not delegated(c, A)
    start = datetime(2026, 12, 7, 18, tzinfo=UTC)
    c = Configuration(id=c.id, name="db", resource_group="rg", subscription_id="sub-a",
                      next_occurrences=((start, start),), tenant="a", tenant_id=A)
    (expected,) = expected_runs([c])
    assert (expected.tenant, expected.tenant_id) == ("a", A)
    bare = Run(correlation_id=expected.correlation_id, configuration_id=c.id,
               configuration_name="db", run_name="x", start=start)
    (filled,) = with_configurations([bare], [c])
    assert (filled.tenant, filled.tenant_id) == ("a", A)
    assert filled.to_json()["tenant"] == "a" and filled.to_json()["tenant_id"] == A
    assert Run(correlation_id="x", configuration_id="", configuration_name="", run_name="",
               start=start).to_json()["tenant"] is None


def test_no_tenant_answering_is_stamped_by_the_injected_clock() -> None:
    from services.azure.tenants import ProfileResult, merge_fetched
    from services.domain.clock import ManualClock
    from services.settings import Profile, Settings

    clock = ManualClock(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    failed = [ProfileResult(Profile("a", A, Settings()), error="denied")]
    merged = merge_fetched(failed, key, clock=clock)
    assert (merged.items, merged.fetched_at, merged.failed) == ((), clock.now(), {"a": "denied"})
