"""The console's roles, in a module light enough for the command line's help."""

from __future__ import annotations

ROLES = ("adviser", "supervisor", "campaign_manager", "echelon_lead", "regional_lead", "admin")
