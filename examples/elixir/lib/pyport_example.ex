defmodule PyportExample do
  @moduledoc """
  pyport from Elixir: asyncio tasks run in Python ports, called through the
  Erlang API (`:py_event_loop_pool`) or the erlang_python-style `:py` module.
  See docs/elixir.md in pyport.
  """

  defmodule User do
    @moduledoc "A struct, to show how structs cross to Python."
    defstruct [:name, :age]
  end

  @doc "Runs `example.fetch/1` for each name concurrently; results in order."
  def fetch_all(names) do
    names
    |> Enum.map(&:py_event_loop_pool.create_task(:example, :fetch, [&1]))
    |> Enum.map(&:py_event_loop_pool.await/1)
  end

  @doc "A struct handed to Python."
  def describe(%User{} = user), do: :py.call(:example, :describe, [user])

  @doc "Keyword lists as Python keyword arguments."
  def options(opts), do: :py.call(:example, :options, [], opts)
end
