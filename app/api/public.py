"""The public project page that the signboard's QR code opens: what, by whom, until when."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from app.api.deps import SessionDep
from app.models import Project
from app.services.signboard import COMPLAINT_PHONE, rows_for

router = APIRouter(tags=["public"])

STATE_NAMES = {
    "submitted": "待受理", "returned": "退回补正", "refused": "不予登记", "accepted": "已受理",
    "briefed": "已安全交底", "in_progress": "施工中", "completion_declared": "已申报完工",
    "closed": "已完工核销", "expired": "登记已过期", "revoked": "登记已撤销",
}
# The public sees no phone numbers of private persons: only the parties' names.
PRIVATE_LABELS = {"建设单位/业主", "施工单位"}


@router.get("/p/{public_id}", response_class=HTMLResponse)
def public_page(public_id: str, session: SessionDep):
    """The project's public page (HTML), opened from the signboard's QR code."""
    project = session.scalar(select(Project).where(Project.public_id == public_id))
    if project is None:
        raise HTTPException(404, "public_id: no such project")
    rows = []
    for label, value in rows_for(project):
        if label in PRIVATE_LABELS:
            party = project.builder if label.startswith("建设") else project.contractor
            value = party.get("name", "")
        rows.append(f"<tr><th>{escape(label)}</th><td>{escape(str(value))}</td></tr>")
    state = STATE_NAMES.get(project.state, project.state)
    html = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(project.title)} · {escape(project.reg_no)}</title>
<style>body{{font-family:sans-serif;margin:1rem;max-width:40rem}}
th{{text-align:left;padding:.3rem .8rem .3rem 0;white-space:nowrap;vertical-align:top}}
.state{{display:inline-block;padding:.2rem .6rem;background:#b40000;color:#fff}}</style>
</head><body>
<h1>{escape(project.title)}</h1>
<p class="state">{escape(state)}</p>
<table>{''.join(rows)}</table>
<p>发现安全隐患或违法施工，请拨打 {COMPLAINT_PHONE} 投诉举报。</p>
</body></html>"""
    return HTMLResponse(html)
