%% Python asyncio tasks on one event loop: the pool's loop 1, or a loop
%% chosen explicitly with a handle from py_event_loop_pool:get_loop/0.
%%
%% Each task runs in the port's Python process as Module.Func(*Args,
%% **Kwargs); when that returns an awaitable it runs as an asyncio Task.
%% Tasks from one process to one loop start in the order they were
%% submitted.
-module(py_event_loop).

%% API.
-export([run/3]).
-export([run/4]).
-export([run/5]).
-export([create_task/3]).
-export([create_task/4]).
-export([create_task/5]).
-export([create_task/6]).
-export([await/1]).
-export([await/2]).
-export([spawn_task/3]).
-export([spawn_task/4]).
-export([spawn_task/5]).
-export([exec/1]).
-export([exec/2]).
-export([exec/3]).
-export([eval/1]).
-export([eval/2]).
-export([eval/3]).
-export([stream/3]).
-export([stream/4]).
-export([stream/5]).

%% Internal exports.
-export([loop_index_check/1]).

-type py_name() :: atom() | binary().
-type kwargs() :: #{atom() | binary() => term()}.
%% `result`: `term` (the default) converts the result; `handle` keeps it
%% in Python and returns a handle (py_obj); `auto` converts what has a term
%% form and keeps the rest as handles (docs/handles.md).
%% `kwargs` may also be a keyword list (`[{a, 1}]`, Elixir's `[a: 1]`);
%% `none_atom` is what Python's `None` becomes in this result (default:
%% the loop's `none_atom` setting, itself `none` by default).
-type run_opts() :: #{timeout => timeout(), kwargs => kwargs() | [{atom(), term()}],
                      result => handle | auto | term,
                      none_atom => pyport_compat:none_atom()}.
-type task_opts() :: #{result => handle | auto | term,
                       none_atom => pyport_compat:none_atom()}.
%% Python source text: a binary or a string (UTF-8 / Unicode).
-type source() :: unicode:chardata().
%% eval only: `locals`, the local bindings of the expression (a map or
%% keyword list, names as atoms or binaries), and `none_atom` as for run/5.
-type source_opts() :: #{timeout => timeout(),
                         locals => #{atom() | binary() => term()} | [{atom(), term()}],
                         none_atom => pyport_compat:none_atom()}.
%% A loop handle from py_event_loop_pool:get_loop/0. It names the loop, not
%% its current worker, so it stays valid across port restarts. Treat it as
%% opaque.
-type loop() :: {pyport_loop, pos_integer() | {atom(), pos_integer()}}.
-type reason() :: timeout
                | cancelled
                | loop_unavailable
                | overloaded
                | {packet_too_large, Size :: pos_integer(), Max :: pos_integer()}
                | unknown_task
                | {python, Type :: binary(), Message :: binary(),
                   Traceback :: binary()}
                | {python_exit, Status :: integer() | term()}
                | {worker_down, Reason :: term()}
                | pyport_handle:error()
                | {handle_limit, Max :: non_neg_integer()}
                | {bad_reply, handles}.
-type result() :: {ok, term()} | {error, reason()}.
-export_type([task_opts/0]).
-export_type([py_name/0, kwargs/0, run_opts/0, loop/0, reason/0, result/0,
              source/0, source_opts/0]).

-define(DEFAULT_LOOP, 1).
-define(DEFAULT_TIMEOUT, 5000).

%% API.

-spec run(py_name(), py_name(), list()) -> result().
run(Module, Func, Args) ->
    run(Module, Func, Args, #{}).

-spec run(py_name(), py_name(), list(), run_opts()) -> result().
run(Module, Func, Args, Opts) ->
    run({pyport_loop, ?DEFAULT_LOOP}, Module, Func, Args, Opts).

-spec run(loop(), py_name(), py_name(), list(), run_opts()) -> result().
run(Loop, Module, Func, Args, Opts) ->
    pyport_task:run_on({fixed, loop_index(Loop)}, Module, Func, Args, Opts).

-spec create_task(py_name(), py_name(), list()) -> reference().
create_task(Module, Func, Args) ->
    create_task(Module, Func, Args, #{}).

-spec create_task(py_name(), py_name(), list(), kwargs()) -> reference().
create_task(Module, Func, Args, Kwargs) ->
    create_task({pyport_loop, ?DEFAULT_LOOP}, Module, Func, Args, Kwargs).

-spec create_task(loop(), py_name(), py_name(), list(), kwargs())
    -> reference().
create_task(Loop, Module, Func, Args, Kwargs) ->
    create_task(Loop, Module, Func, Args, Kwargs, #{}).

%% create_task/5 with options: `result` as for run/5.
-spec create_task(loop(), py_name(), py_name(), list(), kwargs(), task_opts())
    -> reference().
create_task(Loop, Module, Func, Args, Kwargs, Opts) ->
    pyport_task:create_on({fixed, loop_index(Loop)}, Module, Func, Args, Kwargs, Opts).

-spec await(reference()) -> result().
await(Ref) ->
    await(Ref, ?DEFAULT_TIMEOUT).

%% On timeout the task is cancelled in Python and its result, should it
%% still come, is dropped: it never reaches the caller's mailbox.
-spec await(reference(), timeout()) -> result().
await(Ref, Timeout) when is_reference(Ref) ->
    pyport_task:await(Ref, pyport_task:check_timeout(Timeout));
await(Ref, _) ->
    error({badarg, {task, Ref}}).

-spec spawn_task(py_name(), py_name(), list()) -> ok | {error, reason()}.
spawn_task(Module, Func, Args) ->
    spawn_task(Module, Func, Args, #{}).

-spec spawn_task(py_name(), py_name(), list(), kwargs())
    -> ok | {error, reason()}.
spawn_task(Module, Func, Args, Kwargs) ->
    spawn_task({pyport_loop, ?DEFAULT_LOOP}, Module, Func, Args, Kwargs).

-spec spawn_task(loop(), py_name(), py_name(), list(), kwargs())
    -> ok | {error, reason()}.
spawn_task(Loop, Module, Func, Args, Kwargs) ->
    pyport_task:spawn_on({fixed, loop_index(Loop)}, Module, Func, Args, Kwargs).

%% Runs Python statements in the loop's `__main__` namespace (e.g. to
%% define helpers without a file); what they define is visible to later
%% exec/eval and to tasks naming module `'__main__'`, on that loop, until
%% its port restarts.
-spec exec(source()) -> ok | {error, reason()}.
exec(Code) ->
    exec({pyport_loop, ?DEFAULT_LOOP}, Code, #{}).

-spec exec(loop(), source()) -> ok | {error, reason()}.
exec(Loop, Code) ->
    exec(Loop, Code, #{}).

-spec exec(loop(), source(), source_opts()) -> ok | {error, reason()}.
exec(Loop, Code, Opts) ->
    case source(exec, Loop, Code, Opts) of
        {ok, _} -> ok;
        {error, _} = Error -> Error
    end.

%% Evaluates a Python expression in the loop's `__main__` namespace.
-spec eval(source()) -> result().
eval(Expr) ->
    eval({pyport_loop, ?DEFAULT_LOOP}, Expr, #{}).

-spec eval(loop(), source()) -> result().
eval(Loop, Expr) ->
    eval(Loop, Expr, #{}).

-spec eval(loop(), source(), source_opts()) -> result().
eval(Loop, Expr, Opts) ->
    source(eval, Loop, Expr, Opts).

%% A stream (docs/streams.md): Module.Func(*Args, **Kwargs) returns a
%% generator, an async generator or another lazy iterable, whose items
%% the caller takes with py_stream. Returns at once.
-spec stream(py_name(), py_name(), list()) -> py_stream:stream().
stream(Module, Func, Args) ->
    stream(Module, Func, Args, #{}).

-spec stream(py_name(), py_name(), list(), py_stream:options()) -> py_stream:stream().
stream(Module, Func, Args, Opts) ->
    stream({pyport_loop, ?DEFAULT_LOOP}, Module, Func, Args, Opts).

-spec stream(loop(), py_name(), py_name(), list(), py_stream:options())
    -> py_stream:stream().
stream(Loop, Module, Func, Args, Opts0) ->
    Index = loop_index(Loop),
    %% A keyword list is kwargs here too (pyport_compat:kwargs/1).
    Opts = case Opts0 of
               #{kwargs := Kw} -> Opts0#{kwargs := pyport_compat:kwargs(Kw)};
               _ -> Opts0
           end,
    {Kwargs, StreamOpts} = py_stream:check_options(Opts),
    ok = pyport_task:check_call(Module, Func, Args, Kwargs),
    py_stream:start(Index, Module, Func, Args, Kwargs, StreamOpts).
%% The loop id of a loop handle; badarg if it is not one (py_pool).
-spec loop_index_check(loop()) -> pyport_calls:loop_index().
loop_index_check(Loop) ->
    loop_index(Loop).

%% Internal.

source(Kind, Loop, Text, Opts) ->
    Index = loop_index(Loop),
    Timeout = source_timeout(Kind, Opts),
    Bin = try unicode:characters_to_binary(Text) of
              B when is_binary(B) -> B;
              _ -> error({badarg, {source, Text}})
          catch
              error:badarg -> error({badarg, {source, Text}})
          end,
    case Kind of
        exec -> pyport_task:run_source(Index, Kind, Bin, Timeout);
        eval -> pyport_task:run_source(Index, Kind, Bin, Timeout,
                                         pyport_compat:eval_opts(Opts))
    end.

source_timeout(Kind, Opts) when is_map(Opts) ->
    maps:foreach(fun(timeout, _) -> ok;
                    (locals, _) when Kind =:= eval -> ok;
                    (none_atom, _) when Kind =:= eval -> ok;
                    (Key, Value) -> error({badarg, {option, Key, Value}})
                 end, Opts),
    pyport_task:check_timeout(maps:get(timeout, Opts, ?DEFAULT_TIMEOUT));
source_timeout(_, Opts) ->
    error({badarg, {options, Opts}}).

loop_index({pyport_loop, Index}) when is_integer(Index), Index > 0 -> Index;
%% A named pool's loop (py_pool).
loop_index({pyport_loop, {Pool, Index} = Id}) when is_atom(Pool), is_integer(Index), Index > 0 -> Id;
loop_index(Other) -> error({badarg, {loop, Other}}).
