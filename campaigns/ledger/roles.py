"""The console's roles, in a module light enough for the command line's help."""

from __future__ import annotations

ROLES = ("adviser", "supervisor", "campaign_manager", "echelon_lead", "regional_lead", "admin")

# The words a user reads for each role (the console's header, the accounts command).
ROLE_LABELS = {
    "adviser": "conseiller",
    "supervisor": "superviseur",
    "campaign_manager": "responsable de campagne",
    "echelon_lead": "responsable d'échelon",
    "regional_lead": "responsable régional",
    "admin": "administrateur",
}
