# An Elixir project using pyport as a dependency, as a user's would; run by
# `make test-elixir` (part of `make test`). The dependency is this very
# repository (`path: "../.."`); in your project use `git:` or `github:`
# instead, with the same `manager: :rebar3`.
defmodule PyportExample.MixProject do
  use Mix.Project

  def project do
    [
      app: :pyport_example,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      deps: deps()
    ]
  end

  def application do
    [extra_applications: [:logger]]
  end

  defp deps do
    [{:pyport, path: "../..", manager: :rebar3}]
  end
end
