"""Warehouse: table catalog over the lake, Ibis connection, views for analysts."""
