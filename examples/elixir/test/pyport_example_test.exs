defmodule PyportExampleTest do
  use ExUnit.Case, async: true

  alias PyportExample.User

  test "a plain call, a Python exception" do
    assert {:ok, 4.0} = :py_event_loop_pool.run(:math, :sqrt, [16.0])
    assert {:error, {:python, "ValueError", "math domain error", _tb}} =
             :py_event_loop_pool.run(:math, :sqrt, [-1.0])
  end

  test "asyncio tasks run concurrently, results come back in order, None is nil" do
    assert [
             {:ok, %{"name" => "ada", "length" => 3, "missing" => nil}},
             {:ok, %{"name" => "grace", "length" => 5, "missing" => nil}}
           ] = PyportExample.fetch_all(["ada", "grace"])
  end

  test "nil goes to Python as None and comes back as nil" do
    assert {:ok, nil} = :py.eval("x", %{x: nil})
    assert {:ok, true} = :py.eval("x is None", x: nil)
  end

  test "keyword lists are keyword arguments" do
    assert {:ok, [{"a", 1}, {"b", "two"}]} = PyportExample.options(a: 1, b: "two")
    assert {:ok, 8.0} = :py_event_loop_pool.run(:math, :pow, [2, 3])
    assert {:ok, 3.14} = :py.call(:builtins, :round, [3.14159], ndigits: 2)
  end

  test "a struct arrives as a dict with __struct__" do
    assert {:ok, "Elixir.PyportExample.User: Ada (36)"} =
             PyportExample.describe(%User{name: "Ada", age: 36})
  end

  test "Python calls back into Elixir" do
    :ok = :py.register_function(:elixir_upcase, fn [s] -> String.upcase(s) end)
    assert {:ok, "HELLO"} = :py.eval("__import__('erlang').elixir_upcase('hello')")
    assert {:ok, "HI"} = :py.eval("__import__('erlang').call('elixir_upcase', 'hi')")
    :ok = :py.unregister_function(:elixir_upcase)
  end

  test "a Python actor is a process: GenServer.call/cast, linked, stopped" do
    {:ok, pid} = :py_actor.start_link(:example, :Counter, [41], %{})
    assert 42 = GenServer.call(pid, :bump)
    :ok = GenServer.cast(pid, {:set, 1})
    assert 2 = GenServer.call(pid, :bump)
    # None is nil here too (none_atom: :nil for the whole loop).
    assert nil == GenServer.call(pid, :nothing)
    ref = Process.monitor(pid)
    Process.unlink(pid)
    Process.exit(pid, :shutdown)
    assert_receive {:DOWN, ^ref, :process, ^pid, :shutdown}, 5000
  end

  test "a stream: items of a Python async generator, under flow control" do
    assert {:ok, [3, 2, 1, nil]} = :py.stream(:example, :countdown, [3])
    stream = :py_event_loop_pool.stream(:example, :countdown, [2], %{kwargs: [delay: 0.001]})
    assert {:ok, 2} = :py_stream.next(stream)
    assert {:ok, [1, nil]} = :py_stream.to_list(stream)
  end
end
