"""The contract between jiesu's services: events, topics, enums."""
