%% The application's configuration: every key pyport reads from its
%% application environment, its default and its validation (one table,
%% keys/0, from which the list of known keys is derived too), the per-loop
%% settings (`loops`), the pool size, the port program and its command
%% line.
-module(pyport_config).

%% API.
-export([loop/1]).
-export([pool_size/0]).
-export([executable/0]).
-export([port_args/1]).
-export([unknown_keys/1]).
-export([warn_unknown_keys/0]).
-export([unknown_keys_message/1]).
-export([cluster/0]).
-export([actor_max_backlog/0]).
-export([pool/1]).
-export([loops_beyond/2]).

-type output() :: logger | stderr.
%% One loop's settings: the application environment with that loop's own
%% entry in `loops` taking precedence.
-type config() :: #{python_path := [file:filename_all()],
                    max_packet := pos_integer(),
                    max_output_packet := pos_integer(),
                    max_memory_mb := pos_integer() | infinity,
                    max_pending := pos_integer() | infinity,
                    cancel_grace_ms := non_neg_integer(),
                    start_timeout := timeout(),
                    venv := file:filename_all() | pyport_venv:spec() | undefined,
                    preload := [atom() | binary() | string()],
                    max_atoms := non_neg_integer(),
                    max_handles := non_neg_integer(),
                    max_handles_per_owner := non_neg_integer(),
                    max_callbacks := non_neg_integer(),
                    python_log_level := logger:level() | all | none | undefined,
                    output := output(),
                    env := env(),
                    send_allow := py_callback:send_allow(),
                    allow_other_python := boolean(),
                    none_atom := pyport_compat:none_atom(),
                    %% Set by loop/1: python_log_level was unset.
                    log_level_follows => boolean()}.
%% Variables set (a string) or unset (false) in the port's environment, on
%% top of the node's own, which the port inherits.
-type env() :: [{string(), string() | false}].
%% A key unknown_keys/1 reports: one of the environment, or one of a
%% `loops` entry.
-type unknown_key() :: atom() | {loops, term(), term()}.
-export_type([config/0, output/0, env/0, unknown_key/0]).

-define(APP, pyport).

%% API.

%% The settings of loop Index, validated; {error, {bad_config, {Key,
%% Value}}} names the first bad one.
-spec loop(pyport_task:loop_index()) -> {ok, config()} | {error, {bad_config, term()}}.
loop({Pool, Index}) ->
    %% A named pool's settings, as its server keeps them (pool/1 checked them).
    Settings = try ets:lookup(Pool, config) of
                   [{config, C}] -> C;
                   [] -> #{}
               catch
                   error:badarg -> #{}
               end,
    loop(fun(Key, Default) -> maps:get(Key, Settings, Default) end, Index);
loop(Index) ->
    loop(fun env/2, Index).

loop(Get, Index) ->
    Global = maps:from_list([{Key, Get(Key, Default)}
                             || {Key, Default, _} <- loop_keys()]),
    case loop_entry(Get(loops, #{}), Index) of
        {ok, Own} ->
            Valid = maps:from_list([{Key, Check} || {Key, _, Check} <- loop_keys()]),
            %% The global env is checked on its own too: a loop's own env
            %% is merged over it, not instead of it.
            case [{Key, Value} || {Key, Value} <- maps:to_list(maps:merge(Global, Own))
                                                  ++ [{env, maps:get(env, Global)}],
                                  not (maps:get(Key, Valid))(Value)] of
                [] -> {ok, resolve_env(resolve_log_level(maps:merge(Global, Own)),
                                      maps:get(env, Global), maps:get(env, Own, []))};
                [Bad | _] -> {error, {bad_config, explain(Bad)}}
            end;
        {error, _} = Error ->
            Error
    end.

%% A named pool's options (py_pool:child_spec/1): `name` (an atom), `size`
%% (default 1), `loops` and every per-loop key; anything else, or a
%% `loops` entry for a loop the pool does not have, is refused.
-spec pool(term()) -> {ok, atom(), pos_integer(), map()} | {error, {bad_config, term()}}.
pool(#{name := Name} = Opts) when is_atom(Name), Name =/= default, Name =/= undefined ->
    Size = maps:get(size, Opts, 1),
    Settings = maps:without([name, size], Opts),
    Known = [Key || {Key, _, _} <- loop_keys()] ++ [loops],
    Get = fun(Key, Default) -> maps:get(Key, Settings, Default) end,
    case [K || K <- maps:keys(Settings), not lists:member(K, Known)] of
        _ when not is_integer(Size); Size < 1 ->
            {error, {bad_config, {size, Size}}};
        [K | _] ->
            {error, {bad_config, {unknown_key, K}}};
        [] ->
            case loops_beyond(Get(loops, #{}), Size) of
                [] ->
                    %% Every loop's settings, checked now rather than by
                    %% each worker as it starts.
                    Checked = [loop(Get, I) || I <- lists:seq(1, Size)],
                    case [E || {error, _} = E <- Checked] of
                        [] -> {ok, Name, Size, Settings};
                        [Error | _] -> Error
                    end;
                [I | _] ->
                    {error, {bad_config, {{loops, I}, {no_such_loop, Size}}}}
            end
    end;
pool(Other) ->
    {error, {bad_config, {pool, Other}}}.

%% The keys of a `loops` map that name no loop of a pool of Size loops.
-spec loops_beyond(term(), pos_integer()) -> [term()].
loops_beyond(Loops, Size) when is_map(Loops) ->
    lists:sort([I || I <- maps:keys(Loops),
                     not (is_integer(I) andalso I >= 1 andalso I =< Size)]);
loops_beyond(_, _) ->
    [].

%% The configured number of loops; unset means one per scheduler.
-spec pool_size() -> {ok, pos_integer()} | {error, {bad_config, term()}}.
pool_size() ->
    case env(event_loop_pool_size, undefined) of
        undefined -> {ok, erlang:system_info(schedulers)};
        N when is_integer(N), N > 0 -> {ok, N};
        Other -> {error, {bad_config, {event_loop_pool_size, Other}}}
    end.

%% The `executable` application variable replaces the port program; `make
%% bench` points it at `priv/pyport-echo` to measure the floor through the
%% very same Erlang side.
-spec executable() -> file:filename().
executable() ->
    pyport_executable:path().

%% The command line of the port. Keys other than max_packet and
%% python_path are optional (absent: the option is left out).
-spec port_args(#{max_packet := pos_integer(),
                  python_path := [file:filename_all()],
                  max_memory_mb => pos_integer() | infinity,
                  atom() => term()}) -> [string()].
port_args(#{max_packet := MaxPacket, python_path := _} = Config) ->
    Value = fun(Key, Flag, Show) ->
                    case maps:get(Key, Config, undefined) of
                        undefined -> [];
                        infinity -> [];
                        V -> [Flag, Show(V)]
                    end
            end,
    Repeat = fun(Key, Flag) ->
                     lists:append([[Flag, to_list(V)]
                                   || V <- maps:get(Key, Config, [])])
             end,
    ["port", "--max-packet", integer_to_list(MaxPacket)]
        ++ Value(max_output_packet, "--max-output-packet", fun integer_to_list/1)
        ++ Value(max_memory_mb, "--max-memory-mb", fun integer_to_list/1)
        ++ Repeat(python_path, "--path")
        ++ Value(venv, "--venv", fun to_list/1)
        ++ Repeat(preload, "--preload")
        ++ Value(max_atoms, "--max-atoms", fun integer_to_list/1)
        ++ Value(python_log_level, "--log-level", fun atom_to_list/1)
        ++ case maps:get(none_atom, Config, none) of
               none -> [];
               NoneAtom -> ["--none-atom", atom_to_list(NoneAtom)]
           end
        ++ case maps:is_key(output, Config) of
               true -> ["--capture-output"];
               false -> []
           end
        ++ Value(stderr_file, "--stderr-file", fun to_list/1).

%% The keys of an application environment (as application:get_all_env/1
%% returns it) that pyport does not read, and the keys of its `loops`
%% entries that are not per-loop settings: most likely misspelt.
-spec unknown_keys([{atom(), term()}]) -> [unknown_key()].
unknown_keys(Env) ->
    Known = [Key || {Key, _, _} <- loop_keys()],
    Global = [Key || {Key, _} <- Env,
                     not lists:member(Key, Known ++ global_keys())],
    Loops = case lists:keyfind(loops, 1, Env) of
                {loops, Entries} when is_map(Entries) ->
                    [{loops, Index, Key}
                     || {Index, Own} <- lists:sort(maps:to_list(Entries)),
                        is_map(Own),
                        Key <- lists:sort(maps:keys(Own)),
                        not lists:member(Key, Known)];
                _ ->
                    []
            end,
    Global ++ Loops.

%% Logs one warning for the unknown keys of pyport's environment, if any,
%% and one for `loops` entries beyond the pool's size (called once, when
%% the application starts).
-spec warn_unknown_keys() -> ok.
warn_unknown_keys() ->
    case pool_size() of
        {ok, Size} ->
            case loops_beyond(env(loops, #{}), Size) of
                [] -> ok;
                Beyond -> logger:warning("pyport: `loops` has entries for loop(s) ~tp, "
                                         "but the pool has ~b loop(s): those settings "
                                         "apply to no loop", [Beyond, Size],
                                         #{pyport_loops_beyond => Beyond})
            end;
        {error, _} ->
            ok
    end,
    case unknown_keys(application:get_all_env(?APP)) of
        [] ->
            ok;
        Unknown ->
            logger:warning("~ts", [unknown_keys_message(Unknown)],
                           #{pyport_unknown_keys => Unknown})
    end.

%% The warning about unknown keys, in two lines: the keys with what they
%% were probably meant to be, then every known key.
-spec unknown_keys_message([unknown_key()]) -> unicode:chardata().
unknown_keys_message(Unknown) ->
    Known = lists:sort([K || {K, _, _} <- loop_keys()] ++ global_keys()),
    Show = fun(K) when is_atom(K) -> atom_to_list(K);
              (K) -> io_lib:format("~0tp", [K])
           end,
    io_lib:format("pyport: unknown configuration key(s) ~ts (ignored; refused in a "
                  "loops entry)~ts~nknown keys: ~ts",
                  [lists:join(", ", [Show(K) || K <- Unknown]),
                   suggestions(Unknown, Known),
                   lists:join(", ", [atom_to_list(K) || K <- Known])]).

%% " (did you mean python_path for pythonpath, ...)" for the unknown keys
%% that are a known key without its underscores or its last words.
suggestions(Unknown, Known) ->
    Plain = fun(K) -> string:replace(atom_to_list(K), "_", "", all) end,
    Pairs = [{Good, Bad}
             || Bad <- [K || K <- Unknown, is_atom(K)],
                Good <- Known,
                lists:flatten(Plain(Good)) =:= lists:flatten(Plain(Bad))
                    orelse lists:suffix("_" ++ atom_to_list(Bad), atom_to_list(Good))],
    case Pairs of
        [] -> "";
        _ -> [": did you mean ",
              lists:join(", ", [io_lib:format("~ts for ~ts", [Good, Bad]) || {Good, Bad} <- Pairs]),
              "?"]
    end.

%% A bad setting as the error names it; a python_path given as one string
%% (a list of characters) says it must be a list of them.
explain({python_path, [C | _] = Path}) when is_integer(C) ->
    {python_path, Path, "python_path is a list of directories: write [\"" ++ Path ++ "\"]"};
explain({python_path, Path}) when is_binary(Path) ->
    {python_path, Path, "python_path is a list of directories: write [<<\"" ++
         unicode:characters_to_list(Path) ++ "\">>]"};
explain(Bad) ->
    Bad.

%% The cluster settings (pyport_cluster_registry): the pool name whose `pg`
%% group this node joins, and how often it publishes its loads.
-spec cluster() -> {ok, #{pool := term(), load_interval_ms := pos_integer()}}
                 | {error, {bad_config, term()}}.
cluster() ->
    case env(cluster_load_interval_ms, 100) of
        Ms when is_integer(Ms), Ms > 0 ->
            {ok, #{pool => env(cluster_pool, default), load_interval_ms => Ms}};
        Other ->
            {error, {bad_config, {cluster_load_interval_ms, Other}}}
    end.

%% How many messages an actor's proxy lets wait in its mailbox, beyond
%% its window, before it exits `{actor_backlog_full, Max}` (py_actor).
-spec actor_max_backlog() -> pos_integer().
actor_max_backlog() ->
    case env(actor_max_backlog, 100000) of
        N when is_integer(N), N > 0 -> N;
        Other -> error({bad_config, {actor_max_backlog, Other}})
    end.

%% Internal.

%% The settings each loop may have of its own: {Key, Default, Valid}.
loop_keys() ->
    [{python_path, [],
      fun(Paths) -> is_list(Paths) andalso lists:all(fun is_path/1, Paths) end},
     {max_packet, 64 bsl 20, fun is_positive/1},
     %% The largest frame accepted from the port (results included): 512
     %% MiB, so that any 4 bytes of text read as a length (first byte
     %% 0x20 or more) are refused at once.
     {max_output_packet, 512 bsl 20, fun is_positive/1},
     {max_memory_mb, infinity, fun positive_or_infinity/1},
     {max_pending, infinity, fun positive_or_infinity/1},
     %% How long Python has to answer a cancel before its port is killed.
     {cancel_grace_ms, 2000, fun(T) -> is_integer(T) andalso T >= 0 end},
     {start_timeout, 10000, fun positive_or_infinity/1},
     {venv, undefined, fun(V) -> V =:= undefined orelse is_path(V) orelse pyport_venv:is_spec(V) end},
     %% Refuse a libpython other than the one the port was built against.
     {allow_other_python, false, fun is_boolean/1},
     {preload, [],
      fun(Ms) ->
              is_list(Ms) andalso
                  lists:all(fun(M) -> is_atom(M) orelse is_path(M) end, Ms)
      end},
     {max_atoms, 10000, fun(N) -> is_integer(N) andalso N >= 0 end},
     %% Live object handles per loop (docs/handles.md).
     {max_handles, 10000, fun(N) -> is_integer(N) andalso N >= 0 end},
     %% Live object handles one process may own on a loop (docs/handles.md).
     {max_handles_per_owner, 1000, fun(N) -> is_integer(N) andalso N >= 0 end},
     %% Python's erlang.call/async_call running at once per loop (pyport_callback_runs).
     {max_callbacks, 1000, fun(N) -> is_integer(N) andalso N >= 0 end},
     %% Unset: the OTP logger's primary level (resolve_log_level/1).
     {python_log_level, undefined,
      fun(L) ->
              lists:member(L, [undefined, all, none, emergency, alert, critical,
                               error, warning, notice, info, debug])
      end},
     {output, logger, fun(O) -> O =:= logger orelse O =:= stderr end},
     %% Set or unset in the port's environment (it inherits the node's).
     {env, [], fun(Env) -> is_list(Env) andalso lists:all(fun is_env_entry/1, Env) end},
     %% Where Python's erlang.send/whereis may reach (py_callback).
     {send_allow, any, fun is_send_allow/1},
     %% What Python's None becomes (nil for Elixir; docs/elixir.md).
     {none_atom, none, fun(A) -> lists:member(A, [none, nil, undefined]) end}].

%% Read for the whole application only: validated where they are read
%% (loop/1, pool_size/0, executable/0).
global_keys() ->
    [loops, event_loop_pool_size, executable]
        %% Read by cluster/0.
        ++ [cluster_pool, cluster_load_interval_ms]
        %% Read by actor_max_backlog/0.
        ++ [actor_max_backlog].

env(Key, Default) ->
    application:get_env(?APP, Key, Default).

loop_entry(Loops, Index) when is_map(Loops) ->
    Known = [Key || {Key, _, _} <- loop_keys()],
    case maps:get(Index, Loops, #{}) of
        Own when is_map(Own) ->
            case [K || K <- maps:keys(Own), not lists:member(K, Known)] of
                [] -> {ok, Own};
                [K | _] -> {error, {bad_config, {{loops, Index, K}, maps:get(K, Own)}}}
            end;
        Other ->
            {error, {bad_config, {{loops, Index}, Other}}}
    end;
loop_entry(Other, _) ->
    {error, {bad_config, {loops, Other}}}.

%% A loop's own variables replace the global ones of the same name; all
%% become strings, as open_port wants them.
resolve_env(Config, Global, Own) ->
    OwnNames = [env_string(Name) || {Name, _} <- Own],
    Merged = [E || {Name, _} = E <- Global, not lists:member(env_string(Name), OwnNames)]
        ++ Own,
    Config#{env := [{env_string(Name), env_value(Value)} || {Name, Value} <- Merged]}.

env_string(S) when is_binary(S) -> unicode:characters_to_list(S);
env_string(S) -> S.

env_value(false) -> false;
env_value(V) -> env_string(V).

is_env_entry({Name, Value}) ->
    is_env_text(Name) andalso env_string(Name) =/= []
        andalso not lists:member($=, env_string(Name))
        andalso (Value =:= false orelse is_env_text(Value));
is_env_entry(_) ->
    false.

%% A string or binary without NUL (which cannot be in the environment).
is_env_text(T) when is_binary(T) ->
    is_list(unicode:characters_to_list(T)) andalso binary:match(T, <<0>>) =:= nomatch;
is_env_text(T) when is_list(T) ->
    io_lib:char_list(T) andalso not lists:member(0, T);
is_env_text(_) ->
    false.

is_send_allow(any) ->
    true;
is_send_allow(Allow) when is_map(Allow) ->
    maps:fold(fun(names, Names, Ok) ->
                      Ok andalso is_list(Names) andalso lists:all(fun is_atom/1, Names);
                 (pids, Pids, Ok) ->
                      Ok andalso (Pids =:= callers orelse Pids =:= none);
                 (_, _, _) ->
                      false
              end, true, Allow);
is_send_allow(_) ->
    false.

%% Unset: Python logs what the OTP logger would let through now.
resolve_log_level(#{python_log_level := undefined} = Config) ->
    #{level := Level} = logger:get_primary_config(),
    Config#{python_log_level := Level, log_level_follows => true};
resolve_log_level(Config) ->
    Config.

is_positive(N) -> is_integer(N) andalso N > 0.

positive_or_infinity(N) -> N =:= infinity orelse is_positive(N).

is_path(P) when is_binary(P) -> true;
is_path(P) -> io_lib:char_list(P) andalso P =/= [].

to_list(P) when is_binary(P) -> unicode:characters_to_list(P);
to_list(P) when is_atom(P) -> atom_to_list(P);
to_list(P) -> P.
