import Config

# Python's None comes back as nil (docs/elixir.md), and the example's own
# Python module is on the loops' path.
config :pyport,
  none_atom: :nil,
  event_loop_pool_size: 2,
  python_path: [Path.expand("../priv/python", __DIR__)]
