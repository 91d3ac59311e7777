export const adminText = {
  fr: {
    csv: 'Exporter en CSV',
    csvFor: (what: string) => `Exporter en CSV : ${what}`,
    data: 'Voir les données',
    period: 'Période',
    none: 'Aucune donnée sur la période.',
  },
  en: {
    csv: 'Export CSV',
    csvFor: (what: string) => `Export CSV: ${what}`,
    data: 'Show the data',
    period: 'Period',
    none: 'No data in this period.',
  },
};

/** Colours of the MRR movements and lines (contrast ≥ 3:1 on white, for the graphics). */
export const COLORS = {
  new: '#2c44c2',
  expansion: '#0c6b35',
  reactivation: '#6b3fa0',
  contraction: '#c27803',
  churn: '#b42318',
  line: '#15171c',
  promoter: '#0c6b35',
  passive: '#6b7280',
  detractor: '#b42318',
};
