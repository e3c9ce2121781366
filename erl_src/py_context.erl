%% erlang_python's contexts for a port (docs/porting.md, "Contexts"): a
%% context is a Python namespace kept in one loop's port and owned by one
%% Erlang process, so that what `exec` defines there stays for that
%% process's later `call`/`eval`/`exec` on it.
%%
%% A context is an object handle (docs/handles.md) to an
%% `erlang._contexts.Namespace`, so it gets the handles' lifetime for
%% free: the owner's exit releases it, it is pinned to its loop, a port
%% restart ends it (then every call on it is `{error, context_lost}`),
%% and each call on it is an ordinary task with the task's deadline.
-module(py_context).

-include("pyport_handle.hrl").

%% API.
-export([new/0]).
-export([new/1]).
-export([for_process/1]).
-export([call/6]).
-export([cast/5]).
-export([eval/4]).
-export([exec/3]).
-export([release/1]).
-export([is_context/1]).

%% Treat it as opaque; py matches its tag to tell a context from a loop.
-type context() :: {py_context, pyport_handle:handle()}.
-type reason() :: context_lost | {context_limit, pos_integer()} | py_event_loop:reason().
-export_type([context/0, reason/0]).

-define(MOD, 'erlang._contexts').
%% erlang._contexts.MAX_CONTEXTS: contexts per loop.
-define(MAX_CONTEXTS, 1024).
-define(CREATE_TIMEOUT, 30000).

%% API.

%% A new context on the caller's loop, owned by the caller.
-spec new() -> {ok, context()} | {error, reason()}.
new() ->
    case py_event_loop_pool:get_loop() of
        {ok, Loop} -> new(Loop);
        {error, not_started} -> {error, {loop_unavailable, pyport_not_started}}
    end.

%% A new context on Loop, owned by the caller.
-spec new(py_event_loop:loop()) -> {ok, context()} | {error, reason()}.
new({pyport_loop, _} = Loop) ->
    case py_event_loop:run(Loop, ?MOD, new, [], #{result => handle,
                                                 timeout => ?CREATE_TIMEOUT}) of
        {ok, #py_obj{} = Handle} -> {ok, {py_context, Handle}};
        {error, Reason} -> {error, reason(Reason)}
    end.

%% The caller's own context on Loop: made at the first use, then the same
%% one while its port lives (a fresh one after a port restart). Kept in
%% the process dictionary, as erlang_python keeps its process-local
%% environments.
-spec for_process(py_event_loop:loop()) -> {ok, context()} | {error, reason()}.
for_process({pyport_loop, Index} = Loop) ->
    Key = {?MODULE, Index},
    case get(Key) of
        {py_context, Handle} = Ctx ->
            case pyport_handle:live(Handle) of
                {ok, _} -> {ok, Ctx};
                {error, stale_handle} -> fresh(Key, Loop)
            end;
        undefined ->
            fresh(Key, Loop)
    end.

%% Module.Func(*Args, **Kwargs) seen from the context: Module '__main__'
%% is the context's own namespace.
-spec call(context(), py_event_loop:py_name(), py_event_loop:py_name(), list(),
           map(), timeout()) -> py_event_loop:result() | {error, reason()}.
call({py_context, Handle}, Module, Func, Args, Kwargs, Timeout) when is_list(Args) ->
    run(Handle, call, [Handle, name(Module), name(Func), Args, Kwargs], Timeout);
call(Ctx, _, _, Args, _, _) ->
    error({badarg, {context_call, Ctx, Args}}).

%% call/6 without a reply: a failure is logged (as py:cast/3,4 does).
-spec cast(context(), py_event_loop:py_name(), py_event_loop:py_name(), list(), map())
    -> ok | {error, reason()}.
cast({py_context, Handle}, Module, Func, Args, Kwargs) when is_list(Args), is_map(Kwargs) ->
    case pyport_handle:live(Handle) of
        {ok, _} ->
            reply(py_event_loop_pool:spawn_task(?MOD, call, [Handle, name(Module), name(Func),
                                                             Args, Kwargs], #{}));
        {error, stale_handle} ->
            {error, context_lost}
    end.

%% The value of expression Code in the context; Locals are bindings that
%% do not stay.
-spec eval(context(), py_event_loop:source(), map(), timeout())
    -> py_event_loop:result() | {error, reason()}.
eval({py_context, Handle}, Code, Locals, Timeout) when is_map(Locals) ->
    run(Handle, eval_in, [Handle, source(Code), Locals], Timeout).

%% Statements Code run in the context; what they bind stays.
-spec exec(context(), py_event_loop:source(), timeout()) -> ok | {error, reason()}.
exec({py_context, Handle}, Code, Timeout) ->
    case run(Handle, exec_in, [Handle, source(Code)], Timeout) of
        {ok, _} -> ok;
        Error -> Error
    end.

%% Drops the context now rather than at the owner's exit.
-spec release(context()) -> ok | {error, context_lost | not_owner}.
release({py_context, Handle}) ->
    case py_obj:release(Handle) of
        {error, stale_handle} -> {error, context_lost};
        Other -> Other
    end.

-spec is_context(term()) -> boolean().
is_context({py_context, #py_obj{}}) -> true;
is_context(_) -> false.

%% Internal.

fresh(Key, Loop) ->
    case new(Loop) of
        {ok, Ctx} ->
            put(Key, Ctx),
            {ok, Ctx};
        Error ->
            Error
    end.

%% One task on the handle's loop (the pool routes a task by its handles).
run(Handle, Func, Args, Timeout) ->
    case pyport_handle:live(Handle) of
        {ok, _} ->
            reply(py_event_loop_pool:run(?MOD, Func, Args, #{timeout => Timeout}));
        {error, stale_handle} ->
            {error, context_lost}
    end.

reply({error, Reason}) -> {error, reason(Reason)};
reply(Ok) -> Ok.

reason(stale_handle) -> context_lost;
reason({python, <<"ContextLimitError">>, _, _}) -> {context_limit, ?MAX_CONTEXTS};
reason(Reason) -> Reason.

name(Name) when is_atom(Name) -> atom_to_binary(Name, utf8);
name(Name) when is_binary(Name) -> Name;
name(Name) when is_list(Name) -> unicode:characters_to_binary(Name);
name(Name) -> error({badarg, {name, Name}}).

source(Code) when is_binary(Code) -> Code;
source(Code) when is_list(Code) -> unicode:characters_to_binary(Code);
source(Code) -> error({badarg, {source, Code}}).
