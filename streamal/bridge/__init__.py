"""Bridges between streamal's topics and annotation tools: Label Studio (`label_studio`)."""
