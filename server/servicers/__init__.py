"""One module per proto service. Each method: validate, convert, call the store, convert."""
