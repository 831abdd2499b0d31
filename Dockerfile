FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=jewelia.settings.production
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN SECRET_KEY=build-only-collectstatic-key-000000000000 python manage.py collectstatic --noinput
RUN useradd --create-home jewelia
USER jewelia
EXPOSE 8000
CMD ["gunicorn", "jewelia.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
