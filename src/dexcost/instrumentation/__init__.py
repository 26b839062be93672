"""Instrumentation of LLM SDKs: one subpackage per library, chosen through the registry."""
