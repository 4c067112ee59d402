"""What a campaign is: its validated definition, its folder, its templates, offers."""
