"""Plugin actions and their messages.

* :mod:`synapse_sdk.plugins.log_messages` — ``LogLevel``, ``LogMessageCode``,
  ``register_log_messages`` and ``resolve_log_message`` (the one place a code is rendered);
* :mod:`synapse_sdk.plugins.failure_semantics` — ``RetrySemantics`` and ``FailureCategory``;
* :mod:`synapse_sdk.plugins.failure_patterns` — the regex fragments shared by the categories;
* :mod:`synapse_sdk.plugins.actions` — one package per action category (export, upload, train,
  inference), each with its codes and its failure classifier.

Nothing is imported here, so importing a submodule loads only what it needs.
"""
