"""The responsibility signboard (责任公示牌, 003) and the registration receipt (回执).

The signboard is drawn once, as a PNG (Pillow, Noto Sans CJK), and the PDF wraps that image at
print resolution, so both always show the same thing and the PDF needs no font embedding (the
CJK fonts are CFF-based, which reportlab cannot embed). The QR code opens the public page.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path
from typing import Any

import qrcode
from PIL import Image, ImageDraw, ImageFont

from app.config import get_settings
from app.models import Project
from app.rules import KINDS, get_rules

FONT_DIRS = (Path("/usr/share/fonts/opentype/noto"), Path("/usr/share/fonts/truetype/noto"))
FONT_FILES = {"regular": "NotoSansCJK-Regular.ttc", "bold": "NotoSansCJK-Bold.ttc"}
SC_INDEX = 2  # Noto Sans CJK .ttc faces: JP, KR, SC, TC, HK
WIDTH, HEIGHT = 1240, 1754  # A4 at 150 dpi
COMPLAINT_PHONE = "12345"


def public_url(project: Project) -> str:
    return f"{get_settings().public_url.rstrip('/')}/p/{project.public_id}"


@lru_cache(maxsize=16)
def _font(weight: str, size: int) -> ImageFont.FreeTypeFont:
    for folder in FONT_DIRS:
        path = folder / FONT_FILES[weight]
        if path.exists():
            return ImageFont.truetype(str(path), size, index=SC_INDEX)
    msg = f"font: Noto Sans CJK not found in {', '.join(map(str, FONT_DIRS))} (fonts-noto-cjk)"
    raise RuntimeError(msg)


def qr_image(url: str, box: int = 10) -> Image.Image:
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=box, border=4)
    qr.add_data(url)
    qr.make(fit=True)
    return qr.make_image(fill_color="black", back_color="white").get_image().convert("RGB")


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    """Split ``text`` into lines that fit ``width`` pixels (CJK: any character may break)."""
    lines, line = [], ""
    for ch in text:
        if draw.textlength(line + ch, font=font) > width:
            lines.append(line)
            line = ch
        else:
            line += ch
    return lines + [line] if line else lines


def rows_for(project: Project) -> list[tuple[str, str]]:
    rules = get_rules()
    category = rules.categories.get(project.category, ("", project.category, []))[1]
    builder, contractor = project.builder, project.contractor
    return [
        ("登记编号", project.reg_no),
        ("项目名称", project.title),
        ("工程类别", f"{KINDS.get(project.kind, project.kind)} · {category}"
                    + (" · 高风险" if project.high_risk else "")),
        ("项目地址", project.address),
        ("所属网格", f"{project.street_name} {project.community_name} {project.grid_name}"),
        ("计划工期", f"{project.planned_start} 至 {project.planned_end}"),
        ("登记有效期", f"至 {project.valid_until}" if project.valid_until else "—"),
        ("建设单位/业主", f"{builder.get('name', '')} {builder.get('phone', '')}"),
        ("施工单位", f"{contractor.get('name', '')} {contractor.get('phone', '')}"),
        ("受理单位", project.reviewer_name),
        ("监管部门", "、".join(rules.department_name(d) for d in project.departments)),
        ("巡查人员", f"{project.grid_name} 网格巡查员"),
        ("投诉举报电话", COMPLAINT_PHONE),
    ]


def render_png(project: Project) -> bytes:
    """The signboard as a PNG (A4 portrait at 150 dpi)."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([20, 20, WIDTH - 20, HEIGHT - 20], outline=(180, 0, 0), width=8)
    draw.rectangle([28, 28, WIDTH - 28, 190], fill=(180, 0, 0))
    title = _font("bold", 64)
    head = ("小散工程" if project.kind == "small_project" else "零星作业") + "安全生产责任公示牌"
    draw.text((WIDTH // 2, 110), head, font=title, fill="white", anchor="mm")
    label_font, value_font = _font("bold", 32), _font("regular", 32)
    y, left, value_x = 230, 70, 330
    for label, value in rows_for(project):
        lines = _wrap(draw, str(value), value_font, WIDTH - value_x - 70) or [""]
        draw.text((left, y), label, font=label_font, fill=(40, 40, 40))
        for line in lines:
            draw.text((value_x, y), line, font=value_font, fill="black")
            y += 46
        y += 14
        draw.line([left, y - 8, WIDTH - 70, y - 8], fill=(220, 220, 220), width=2)
    url = public_url(project)
    qr = qr_image(url, box=10)
    size = min(460, HEIGHT - y - 170)
    qr = qr.resize((size, size), Image.NEAREST)
    qr_x, qr_y = (WIDTH - size) // 2, y + 20
    image.paste(qr, (qr_x, qr_y))
    note = _font("regular", 28)
    draw.text((WIDTH // 2, qr_y + size + 30), "扫码查看项目登记信息 · 欢迎社会监督", font=note,
              fill=(60, 60, 60), anchor="mm")
    draw.text((WIDTH // 2, qr_y + size + 72), url, font=_font("regular", 22), fill=(90, 90, 90),
              anchor="mm")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def render_pdf(project: Project) -> bytes:
    """The signboard as a one-page A4 PDF (the PNG at 150 dpi, with title and link metadata)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=A4)
    pdf.setTitle(f"责任公示牌 {project.reg_no}")
    pdf.setSubject(public_url(project))
    pdf.setCreator("xiaosan")
    page_w, page_h = A4
    pdf.drawImage(ImageReader(io.BytesIO(render_png(project))), 0, 0, page_w, page_h)
    pdf.linkURL(public_url(project), (0, 0, page_w, page_h * 0.3))
    pdf.showPage()
    pdf.save()
    return out.getvalue()


def receipt(project: Project) -> dict[str, Any]:
    """The registration receipt (回执) as data: what was registered, by whom, until when."""
    rules = get_rules()
    return {
        "receipt_no": project.receipt_no,
        "title": "限额以下小型工程和零星作业安全生产信息登记回执",
        "reg_no": project.reg_no,
        "project": project.title,
        "address": project.address,
        "builder": project.builder,
        "contractor": project.contractor,
        "accepted_on": project.accepted_on,
        "valid_until": project.valid_until,
        "briefing_due": project.briefing_due,
        "reviewer": project.reviewer_name,
        "departments": [rules.department_name(d) for d in project.departments],
        "high_risk": project.high_risk,
        "public_url": public_url(project),
        "notice": (
            "本登记为告知性登记，仅作为安全生产纳管的依据，不视为对违法建设施工或违法生产"
            "作业的许可；虚假申报、规避施工许可、超出登记范围施工、违法建设的，登记无效，"
            "予以撤销。完工后3个工作日内申报注销。"
        ),
    }
