{:ok, _} = Application.ensure_all_started(:pyport)
ExUnit.start()
