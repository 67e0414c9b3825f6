"""doctor's credentials line when no credential is set up: one line, no SDK dump (issue 20)."""

from __future__ import annotations

from services.azure.doctor import no_credential_summary

CHAIN = (
    "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
    "Attempted credentials:\n"
    "\tEnvironmentCredential: EnvironmentCredential authentication unavailable. Environment "
    "variables are not fully configured.\nVisit https://aka.ms/x to troubleshoot this issue.\n"
    "\tManagedIdentityCredential: Unexpected content type \"text/plain\"\n"
    "\tAzureCliCredential: Please run 'az login' to set up an account\n"
    "To mitigate this issue, please refer to the troubleshooting guidelines here at "
    "https://aka.ms/y.")


def test_the_chain_failure_is_one_line_naming_what_was_tried() -> None:
    summary = no_credential_summary(CHAIN)
    assert summary == ("no Azure credential found (tried Environment, ManagedIdentity, "
                       "AzureCli); Azure CLI: Please run 'az login' to set up an account")


def test_other_errors_are_left_to_the_general_message() -> None:
    assert no_credential_summary("AADSTS700016: application not found") is None
