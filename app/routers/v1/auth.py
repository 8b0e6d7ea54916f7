"""/api/v1/auth: sign-up, tokens, the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Response

from app.core.routing import without_idempotency
from app.routers.deps import (
    API_PREFIX,
    AUTHENTICATED,
    ApiRoute,
    PrincipalDep,
    SessionDep,
    anonymous_rate_limit,
    problems,
)
from app.schemas.api_key import ApiKeyRead
from app.schemas.auth import (
    Me,
    PasswordChange,
    RefreshRequest,
    SignupRequest,
    SignupResult,
    TokenPair,
)
from app.schemas.organization import OrganizationRead
from app.schemas.user import UserRead
from app.services import api_keys, auth, organizations, users

router = APIRouter(prefix=API_PREFIX + "/auth", tags=["auth"], route_class=ApiRoute)
anonymous = [Depends(anonymous_rate_limit)]


def _pair(tokens: auth.IssuedTokens) -> TokenPair:
    return TokenPair(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
    )


@router.post(
    "/signup",
    operation_id="auth_signup",
    status_code=201,
    response_model=SignupResult,
    dependencies=anonymous,
    responses=problems(403, 409, 422, 429),
)
@without_idempotency
async def signup(session: SessionDep, body: SignupRequest) -> SignupResult:
    founded, tokens = await organizations.signup(session, data=body)
    return SignupResult(
        organization=OrganizationRead.model_validate(founded.organization),
        user=UserRead.model_validate(founded.owner),
        **_pair(tokens).model_dump(),
    )


@router.post(
    "/token",
    operation_id="auth_token",
    response_model=TokenPair,
    dependencies=anonymous,
    responses=problems(401, 422, 429),
    summary="Sign in (OAuth2 password grant)",
)
@without_idempotency
async def issue_token(
    session: SessionDep,
    username: Annotated[str, Form(max_length=320, description="The user's e-mail")],
    password: Annotated[str, Form(max_length=256)],
) -> TokenPair:
    return _pair(await auth.login(session, email=username, password=password))


@router.post(
    "/refresh",
    operation_id="auth_refresh",
    response_model=TokenPair,
    dependencies=anonymous,
    responses=problems(401, 422, 429),
    summary="Rotate a refresh token",
)
@without_idempotency
async def refresh_token(session: SessionDep, body: RefreshRequest) -> TokenPair:
    return _pair(await auth.refresh(session, refresh_token=body.refresh_token))


@router.get("/me", operation_id="auth_me", response_model=Me, responses=problems(401, 429))
async def get_me(session: SessionDep, principal: PrincipalDep) -> Me:
    organization = await organizations.get_organization(session, principal)
    me = Me(
        kind=principal.kind,
        organization=OrganizationRead.model_validate(organization),
        scopes=sorted(principal.scopes),
    )
    if principal.kind == "user":
        me.user = UserRead.model_validate(await users.get_user(session, principal, principal.id))
    else:
        me.api_key = ApiKeyRead.model_validate(await api_keys.get_api_key(session, principal, principal.id))
    return me


@router.post(
    "/password",
    operation_id="auth_change_password",
    status_code=204,
    responses=problems(*AUTHENTICATED),
    summary="Change your password (signs out your other sessions)",
)
async def change_password(session: SessionDep, principal: PrincipalDep, body: PasswordChange) -> Response:
    await auth.change_password(session, principal, current=body.current_password, new=body.new_password)
    return Response(status_code=204)
