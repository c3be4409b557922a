"""A small text toolkit, part way through leaving its legacy formatting helper behind."""
