import Config

# Python's None comes back as nil (docs/elixir.md). Settings that name a
# path go in config/runtime.exs: this file is evaluated when the project
# is built, so a path made here would be the build machine's.
config :pyport,
  none_atom: :nil,
  event_loop_pool_size: 2
