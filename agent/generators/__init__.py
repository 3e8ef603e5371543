"""Flex-Offer generators, one per load type."""
