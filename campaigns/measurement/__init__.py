"""Results for leads: objectives report, dashboard, effect, why."""
